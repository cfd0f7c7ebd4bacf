"""Extended operations (``$name``, FHIR R4 operations.html): a registry the router dispatches to.

A module that implements an operation registers it once, at import, with the levels it runs at::

    @register("expand", types=("ValueSet",), type_level=True, instance=True)
    async def expand(svc: Services, call: OperationCall) -> Result: ...

Invocation (R4 operations.html#request): ``GET`` with the parameters in the query string (only for
operations that change nothing), or ``POST`` with a ``Parameters`` resource — or, for operations whose
single input is a resource (``$validate``), that resource itself. :class:`OperationCall` gives every
handler the same view of both: :meth:`OperationCall.get` / :meth:`OperationCall.all` for primitive
parameters, :meth:`OperationCall.resource` for resource-valued ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.interactions import guard
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError

Handler = Callable[[Services, "OperationCall"], Awaitable[Result]]


@dataclass(frozen=True)
class Operation:
    name: str  # without the '$'
    handler: Handler
    system: bool = False  # [base]/$name
    type_level: bool = False  # [base]/[type]/$name
    instance: bool = False  # [base]/[type]/[id]/$name
    types: tuple[str, ...] | None = None  # the resource types it applies to (None: all)
    affects_state: bool = False  # True: POST only


@dataclass
class OperationCall:
    name: str
    method: str
    rtype: str | None
    rid: str | None
    ix: Interaction  # the request (query params in ``ix.params``, the parsed body in ``ix.body``)
    parameters: list[dict[str, Any]] = field(default_factory=list)  # Parameters.parameter of a POST body

    def all(self, name: str) -> list[Any]:
        """Every value of parameter ``name``: strings from the query, ``value[x]`` (or ``resource``) from
        the Parameters body."""
        out: list[Any] = [v for k, v in self.ix.params if k == name]
        for p in self.parameters:
            if p.get("name") == name:
                if "resource" in p:
                    out.append(p["resource"])
                    continue
                out += [v for k, v in p.items() if k.startswith("value")]
        return out

    def get(self, name: str, default: Any = None) -> Any:
        values = self.all(name)
        if len(values) > 1:
            raise FhirError.of(400, "invalid", f"Parameter '{name}' of ${self.name} may appear only once")
        return values[0] if values else default

    def resource(self, name: str) -> dict[str, Any] | None:
        """A resource-valued parameter (only in a POST body)."""
        found = [p["resource"] for p in self.parameters
                 if p.get("name") == name and isinstance(p.get("resource"), dict)]
        if len(found) > 1:
            raise FhirError.of(400, "invalid", f"Parameter '{name}' of ${self.name} may appear only once")
        return found[0] if found else None

    def parts(self, name: str) -> list[list[dict[str, Any]]]:
        """The ``part`` lists of every occurrence of a multi-part parameter."""
        return [p.get("part", []) for p in self.parameters if p.get("name") == name]


_REGISTRY: dict[str, Operation] = {}


def register(name: str, *, system: bool = False, type_level: bool = False, instance: bool = False,
             types: tuple[str, ...] | None = None, affects_state: bool = False) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of ``$name``."""
    def deco(fn: Handler) -> Handler:
        _REGISTRY[name] = Operation(name, fn, system, type_level, instance, types, affects_state)
        return fn
    return deco


def registered() -> dict[str, Operation]:
    """All registered operations by name (for the CapabilityStatement)."""
    _load_modules()
    return dict(_REGISTRY)


_LOADED = False


def _load_modules() -> None:
    """Import the modules that register operations (kept here so the router sees them all)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for mod in [*_BUILTIN_MODULES, *OPERATION_MODULES]:
        importlib.import_module(mod)


_BUILTIN_MODULES = ["fhir_server.interactions.validate_op"]


#: modules whose import registers operations
OPERATION_MODULES: list[str] = ["terminology.operations"]


def _parameters_of(body: Any, op: str) -> list[dict[str, Any]]:
    if body is None:
        return []
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return []
    params = body.get("parameter", [])
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise FhirError.of(400, "invalid", f"${op}: Parameters.parameter must be a list of parameters")
    return params


async def dispatch(svc: Services, ix: Interaction, name: str) -> Result:
    """Run ``$name`` at the level ``ix`` says (``ix.rtype``/``ix.rid`` None for system/type level)."""
    _load_modules()
    op = _REGISTRY.get(name)
    level_ok = op is not None and (
        (ix.rtype is None and op.system)
        or (ix.rtype is not None and ix.rid is None and op.type_level)
        or (ix.rid is not None and op.instance))
    if op is None or not level_ok or (ix.rtype is not None and op.types is not None and ix.rtype not in op.types):
        where = "/".join(x for x in (ix.rtype, "[id]" if ix.rid else None) if x) or "the system level"
        raise FhirError.of(404, "not-supported", f"Operation ${name[:64]} is not supported at {where}")
    if ix.method not in ("GET", "POST") or (ix.method == "GET" and op.affects_state):
        raise FhirError.of(405, "not-supported", f"${name} cannot be invoked with {ix.method}")
    pol = await guard.policy_for(svc)
    if pol is not None and ix.rtype is not None and ix.rid is not None:
        await _instance_visible(svc, pol, ix.rtype, ix.rid)
    call = OperationCall(name, ix.method, ix.rtype, ix.rid, ix, _parameters_of(ix.body, name))
    result = await op.handler(svc, call)
    await guard.audit(svc, "E", f"operation-{name[:40]}", rtype=ix.rtype, rid=ix.rid,
                      query=urlencode(ix.params) or None)
    return result


async def _instance_visible(svc: Services, pol: guard.Policy, rtype: str, rid: str) -> None:
    """An operation on an instance (``Patient/x/$validate``): any valid token may call it (``$validate``,
    terminology), but a restricted token only on an instance it may see (404 otherwise)."""
    from fhir_server.auth.compartment import member_params

    if member_params(svc.registry, rtype) is None:
        return  # shared types (ValueSet/x/$expand, …)
    allowed = pol.patients_for_contexts("r")
    if allowed is None:
        return
    stored = await svc.repo.read(rtype, rid)
    if stored is None or stored.deleted or not stored.body:
        return  # the operation answers 404 itself
    pats = pol.patients_of(orjson.loads(stored.body))
    if not pats or not pats & allowed:
        raise await pol.deny(404, f"{rtype}/{rid[:64]} is not known", rtype, rid, perm="r", code="not-found")
