"""The search parameters known to the server, per resource type, with their compiled extractors."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhir_server.definitions import resource_types, search_parameters
from fhir_server.indexing import model
from fhir_server.indexing.compiler import Path, Step, Unsupported, compile_expression, split_union
from fhir_server.indexing.values import COMPANIONS, Builder, builder_for

INDEXED_TYPES = ("token", "string", "reference", "date", "uri", "number", "quantity")
"""Parameter types that produce index rows (also the keys of ``extract_index_rows``'s result)."""

RESOURCE_TABLE_PARAMS = frozenset({"_id", "_lastUpdated"})
"""Answered from the ``resource`` table's own columns by the search module: listed, but no index rows."""


@dataclass(frozen=True, slots=True)
class Extractor:
    """One compiled path of a parameter and the builder that turns its values into rows."""

    path: Path
    build: Builder | None  # None for exists()-style paths, which yield a 'true'/'false' token


@dataclass(slots=True)
class SearchParam:
    """A search parameter as it applies to one resource type.

    ``expression`` is the published FHIRPath (possibly a union over several base types);
    ``local_expression`` the union branches that apply to ``resource_type``; ``extractors`` their
    compiled form (empty for composite/special parameters and those without an expression).
    """

    code: str
    type: str
    expression: str | None
    url: str | None
    base: tuple[str, ...]
    targets: tuple[str, ...]
    resource_type: str
    local_expression: str | None = None
    extractors: tuple[Extractor, ...] = ()
    components: tuple[tuple[str, str], ...] = ()  # composite: (definition url, expression)
    resource: dict[str, Any] = field(default_factory=dict, repr=False)  # the SearchParameter itself

    @property
    def indexed(self) -> bool:
        return bool(self.extractors)


@dataclass(frozen=True, slots=True)
class TypePlan:
    """Runtime dispatch for one resource type: plans keyed by the resource's top-level JSON key,
    plus the boolean (``exists()``-style) parameters that must run whatever the resource holds,
    each as ``(code, mode, tuple of step paths)``."""

    by_key: dict[str, tuple[tuple[Any, ...], ...]]
    computed: tuple[tuple[Any, ...], ...]


@cache
def _domain_resource_types() -> frozenset[str]:
    return frozenset(t for t in resource_types() if model.is_subtype(t, "DomainResource"))


def _expand_bases(bases: list[str]) -> list[str]:
    out: list[str] = []
    for b in bases:
        if b == "Resource":
            out.extend(sorted(resource_types()))
        elif b == "DomainResource":
            out.extend(sorted(_domain_resource_types()))
        elif b in resource_types():
            out.append(b)
    return list(dict.fromkeys(out))


class SearchParamRegistry:
    """Search parameters per resource type. Build the R4 one with ``SearchParamRegistry.default()``."""

    def __init__(self) -> None:
        self._params: dict[str, dict[str, SearchParam]] = {}
        self._plans: dict[str, TypePlan] = {}
        self.unsupported: list[tuple[str, str, str]] = []
        """(resource type, code, reason) of parameters whose expression could not be compiled."""

    @classmethod
    @cache
    def default(cls) -> SearchParamRegistry:
        """The process-wide registry of all R4 search parameters (built once; ``add`` extends it for everyone)."""
        return cls.r4()

    @classmethod
    def r4(cls) -> SearchParamRegistry:
        """A fresh, unshared registry of all R4 search parameters (e.g. for tests that ``add``)."""
        reg = cls()
        for sp in search_parameters():
            reg.add(sp)
        return reg

    def copy(self) -> SearchParamRegistry:
        """An independent registry with the same parameters (cheap: the compiled parameters and plans
        are shared, they are never changed in place; ``add``/``remove`` on either side do not leak)."""
        out = SearchParamRegistry()
        out._params = {rtype: dict(params) for rtype, params in self._params.items()}
        out._plans = dict(self._plans)
        out.unsupported = list(self.unsupported)
        return out

    def remove(self, url: str, *, restore: SearchParamRegistry | None = None) -> list[SearchParam]:
        """Unregister every parameter defined by the SearchParameter ``url``; where ``restore`` has a
        parameter of the same type and code (an R4 one a custom parameter had replaced), put it back.
        Returns the parameters removed."""
        removed = []
        for rtype, params in self._params.items():
            for code, param in list(params.items()):
                if param.url != url:
                    continue
                removed.append(param)
                back = restore.get(rtype, code) if restore is not None else None
                if back is not None:
                    params[code] = back
                else:
                    del params[code]
                self._plans.pop(rtype, None)
                self.unsupported = [u for u in self.unsupported if u[:2] != (rtype, code)]
        return removed

    def params_for(self, rtype: str) -> dict[str, SearchParam]:
        """All parameters of ``rtype`` by code (including Resource/DomainResource ones)."""
        return self._params.get(rtype, {})

    def get(self, rtype: str, code: str) -> SearchParam | None:
        return self._params.get(rtype, {}).get(code)

    def resource_types(self) -> list[str]:
        return sorted(self._params)

    def add(self, sp_resource: dict[str, Any]) -> list[SearchParam]:
        """Register a SearchParameter resource for each of its base types (replacing a parameter with
        the same code); bases that are not R4 resource types are ignored. Returns the per-type
        parameters created. Raises ValueError if it lacks ``code``, ``type`` or ``base``, or if the
        code is longer than the index tables' ``param`` column (100). An expression that cannot be
        compiled does not raise: it is recorded in ``unsupported`` and the parameter yields no rows."""
        code, ptype, bases = sp_resource.get("code"), sp_resource.get("type"), sp_resource.get("base")
        if not isinstance(code, str) or not isinstance(ptype, str) or not isinstance(bases, list) or not bases:
            raise ValueError("a SearchParameter needs code, type and base")
        if not 0 < len(code) <= 100:  # idx_*.param is VARCHAR(100)
            raise ValueError(f"search parameter code must be 1..100 characters: {code!r}")
        expression = sp_resource.get("expression")
        components = tuple((c.get("definition", ""), c.get("expression", ""))
                           for c in sp_resource.get("component") or ())
        created = []
        for rtype in _expand_bases(bases):
            self.unsupported = [u for u in self.unsupported if u[:2] != (rtype, code)]
            param = SearchParam(
                code=code, type=ptype, expression=expression, url=sp_resource.get("url"), base=tuple(bases),
                targets=tuple(sp_resource.get("target") or ()), resource_type=rtype, components=components,
                resource=sp_resource,
            )
            if expression and ptype in INDEXED_TYPES and code not in RESOURCE_TABLE_PARAMS:
                self._compile(param, expression)
            self._params.setdefault(rtype, {})[code] = param
            self._plans.pop(rtype, None)
            created.append(param)
        return created

    def _compile(self, param: SearchParam, expression: str) -> None:
        rtype = param.resource_type
        try:
            paths = compile_expression(expression, rtype)
        except Unsupported as e:
            self.unsupported.append((rtype, param.code, str(e)))
            return
        if not any(p.steps for p in paths):
            self.unsupported.append((rtype, param.code, "no branch of the expression applies to this type"))
            return
        extractors = []
        for p in paths:
            if not p.steps:
                continue
            if p.mode != "values":
                if param.type == "token":
                    extractors.append(Extractor(p, None))
                continue
            build = builder_for(param.type, p.type, p.is_resource)
            if build is not None and p.is_resource and param.targets:
                build = _only_targets(build, frozenset(param.targets))
            if build is not None:
                extractors.append(Extractor(p, build))
        if not extractors:
            reason = f"no branch yields an element type a {param.type} parameter can index"
            self.unsupported.append((rtype, param.code, reason))
            return
        param.extractors = tuple(extractors)
        param.local_expression = " | ".join(b for b in split_union(expression) if _applies(b, rtype))

    def type_plan(self, rtype: str) -> TypePlan | None:
        """The runtime dispatch table of ``rtype`` (None for an unknown type)."""
        plan = self._plans.get(rtype)
        if plan is None:
            params = self._params.get(rtype)
            if params is None:
                return None
            plan = self._plans[rtype] = _build_plan(params.values())
        return plan


def _only_targets(build: Builder, targets: frozenset[str]) -> Builder:
    """Restrict an inline-resource builder (``Bundle.entry[0].resource``) to the parameter's target types."""
    def restricted(p: str, v: Any, out: list[Any]) -> None:
        if type(v) is dict and v.get("resourceType") in targets:
            build(p, v, out)
    return restricted


def _applies(branch: str, rtype: str) -> bool:
    try:
        return bool(compile_expression(branch, rtype))
    except Unsupported:
        return False


def _step_tuple(s: Step) -> tuple[str, Any, int | None]:
    return (s.key, s.pred, s.index)


def _build_plan(params: Any) -> TypePlan:
    """Plans by top-level key. A builder with a companion (``values.COMPANIONS``) gets a second plan on
    the same path for the companion's table: ``subject`` (idx_reference) and ``subject:identifier``
    (idx_token, the Reference.identifier values) walk the same Reference elements."""
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    computed: list[tuple[Any, ...]] = []
    for param in params:
        booleans = [ex.path for ex in param.extractors if ex.build is None]
        if booleans:  # one 'true'/'false' over all branches (deceasedBoolean | deceasedDateTime)
            computed.append((param.code, booleans[0].mode, tuple(tuple(map(_step_tuple, p.steps)) for p in booleans)))
        for ex in param.extractors:
            steps = ex.path.steps
            if ex.build is None:
                continue
            first = steps[0]
            rest = tuple(map(_step_tuple, steps[1:]))
            entries = by_key.setdefault(first.key, [])
            entries.append((param.code, param.type, ex.build, first.pred, first.index, rest))
            companion = COMPANIONS.get(ex.build)
            if companion is not None:  # the same values also feed another table (Reference.identifier)
                table, name_of, build = companion
                name = name_of(param.code)
                if name is not None:
                    entries.append((name, table, build, first.pred, first.index, rest))
    return TypePlan({k: tuple(v) for k, v in by_key.items()}, tuple(computed))
