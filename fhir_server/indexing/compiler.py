"""Compiles the FHIRPath of a search parameter, once, into plain path-walking plans.

Only the FHIRPath subset that search-parameter expressions use is understood:

* paths ``A.b.c`` (the first name being the resource type, ``Resource``/``DomainResource``, or a child
  of the resource), unions ``x | y``, parentheses;
* type filters ``.ofType(T)``, ``.as(T)``, ``x as T`` (choice elements ``value[x]`` become the JSON key
  ``valueQuantity`` etc.; inline resources are checked by ``resourceType``);
* ``.where(resolve() is T)``, ``.where(child.path = 'literal' and ...)``, ``.extension('url')``;
* ``[n]`` and ``.first()``; a trailing ``.exists()``; the ``X.exists() and X != false`` boolean idiom.

Anything else raises ``Unsupported``. Element types come from the base StructureDefinitions, so each
compiled ``Path`` knows the FHIR type of the values it yields; the caller picks a row builder from it.
Branches of a union that start with another resource type are dropped (they belong to another base).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_server.indexing import model
from fhir_server.indexing.model import Ctx
from fhir_server.indexing.references import reference_type

Predicate = Callable[[Any], bool]


class Unsupported(Exception):
    """The expression uses FHIRPath this compiler does not handle."""


@dataclass(frozen=True, slots=True)
class Step:
    """Take ``key`` of every current node (flattening lists), keep the items ``pred`` accepts,
    then, if ``index`` is set, only the item at that position of the whole collection."""

    key: str
    pred: Predicate | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Path:
    """A linear walk from the resource root. ``mode`` is ``values`` (yield what is found), ``exists``
    (yield whether anything is found) or ``truthy`` (found and not just ``false``)."""

    steps: tuple[Step, ...]
    ctx: Ctx
    mode: str = "values"

    @property
    def type(self) -> str:
        return self.ctx.type

    @property
    def is_resource(self) -> bool:
        return model.is_resource_type(self.ctx.type)


_TOKEN_RE = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|([A-Za-z_][A-Za-z0-9_]*)|(\d+)|(!=|[.()\[\]|=,]))")
_TRUTHY_RE = re.compile(r"^\s*(.+?)\.exists\(\)\s+and\s+\1\s*!=\s*false\s*$")


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise Unsupported(f"cannot tokenize at {text[pos:pos + 20]!r}")
        pos = m.end()
        s, ident, num, sym = m.groups()
        if s is not None:
            out.append(("str", s[1:-1].replace("\\'", "'")))
        elif ident is not None:
            out.append(("id", ident))
        elif num is not None:
            out.append(("num", num))
        else:
            out.append(("sym", sym))
    return out


def split_union(expression: str) -> list[str]:
    """The top-level ``|`` branches of an expression (parentheses and strings respected)."""
    out, depth, cur, quoted = [], 0, [], False
    for ch in expression:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        if ch == "|" and depth == 0 and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [b for b in out if b]


def compile_expression(expression: str, rtype: str) -> list[Path]:
    """The paths ``expression`` denotes on a ``rtype`` resource (empty if no branch applies to it)."""
    m = _TRUTHY_RE.match(expression)
    if m is not None:
        paths = _Parser(m.group(1), rtype).parse()
        return [Path(p.steps, p.ctx, "truthy") for p in paths]
    return _Parser(expression, rtype).parse()


def _and(a: Predicate | None, b: Predicate) -> Predicate:
    if a is None:
        return b
    return lambda n: a(n) and b(n)


def _with_last(path: Path, pred: Predicate | None = None, index: int | None = None) -> Path:
    if not path.steps:
        raise Unsupported("filter on the resource itself")
    last = path.steps[-1]
    if last.index is not None:
        raise Unsupported("filter after an index")
    new = Step(last.key, _and(last.pred, pred) if pred is not None else last.pred,
               index if index is not None else last.index)
    return Path(path.steps[:-1] + (new,), path.ctx, path.mode)


def _resolve_is(target: str) -> Predicate:
    def pred(n: Any) -> bool:
        if type(n) is not dict:
            return False
        ref = n.get("reference")
        t = reference_type(ref) if type(ref) is str else None
        return (t if t is not None else n.get("type")) == target
    return pred


def _resource_is(target: str) -> Predicate:
    return lambda n: type(n) is dict and n.get("resourceType") == target


def _equals(key_paths: list[tuple[str, ...]], literal: Any) -> Predicate:
    def values(n: Any, keys: tuple[str, ...]) -> list[Any]:
        cur = [n]
        for k in keys:
            nxt: list[Any] = []
            for x in cur:
                if type(x) is dict:
                    v = x.get(k)
                    if type(v) is list:
                        nxt.extend(v)
                    elif v is not None:
                        nxt.append(v)
            cur = nxt
        return cur

    return lambda n: any(v == literal for keys in key_paths for v in values(n, keys))


class _Parser:
    def __init__(self, text: str, rtype: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.rtype = rtype

    # -- token helpers
    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise Unsupported("unexpected end of expression")
        self.i += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> str:
        k, v = self.next()
        if k != kind or (value is not None and v != value):
            raise Unsupported(f"expected {value or kind}, got {v!r}")
        return v

    def at(self, kind: str, value: str) -> bool:
        return self.peek() == (kind, value)

    # -- grammar
    def parse(self) -> list[Path]:
        paths = self.union()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return paths

    def union(self) -> list[Path]:
        paths = self.term()
        while self.at("sym", "|"):
            self.next()
            paths = paths + self.term()
        return paths

    def term(self) -> list[Path]:
        paths = self.primary()
        while True:
            if self.at("sym", "."):
                self.next()
                name = self.expect("id")
                if self.at("sym", "("):
                    paths = self.function(paths, name)
                else:
                    paths = self.navigate(paths, name)
            elif self.at("sym", "["):
                self.next()
                index = int(self.expect("num"))
                self.expect("sym", "]")
                paths = [_with_last(p, index=index) for p in paths]
            elif self.at("id", "as"):
                self.next()
                paths = self.of_type(paths, self.type_name())
            else:
                return paths

    def primary(self) -> list[Path]:
        if self.at("sym", "("):
            self.next()
            paths = self.union()
            self.expect("sym", ")")
            return paths
        return self.start(self.expect("id"))

    def start(self, name: str) -> list[Path]:
        """The paths a term beginning with identifier ``name`` starts from."""
        root = Path((), model.root(self.rtype))
        if name in (self.rtype, "Resource", "DomainResource"):
            return [root]
        if model.is_type_name(name) and name[0].isupper():
            self.skip_term()  # a branch for another base type
            return []
        return self.navigate([root], name)  # a path relative to the resource, e.g. 'name | alias'

    def skip_term(self) -> None:
        depth = 0
        while (tok := self.peek()) is not None:
            if tok == ("sym", "|") and depth == 0 or tok == ("sym", ")") and depth == 0:
                return
            if tok in (("sym", "("), ("sym", "[")):
                depth += 1
            elif tok in (("sym", ")"), ("sym", "]")):
                depth -= 1
            self.next()

    def type_name(self) -> str:
        name = self.expect("id")
        if name in ("FHIR", "System") and self.at("sym", "."):
            self.next()
            name = self.expect("id")
        return name

    def navigate(self, paths: list[Path], name: str) -> list[Path]:
        out = []
        for p in paths:
            if p.mode != "values":
                raise Unsupported("navigation after exists()")
            kids = model.children(p.ctx, name)
            if kids is None:
                raise Unsupported(f"no element {p.ctx.path}.{name}")
            out.extend(Path(p.steps + (Step(c.key),), c.ctx) for c in kids)
        return out

    def of_type(self, paths: list[Path], type_name: str) -> list[Path]:
        if not model.is_type_name(type_name):
            raise Unsupported(f"unknown type {type_name}")
        exact = [p for p in paths if p.ctx.type == type_name]
        if exact:  # ofType(uri) on source[x] (uri | canonical) means sourceUri, though canonical is a uri
            return exact
        out = []
        for p in paths:
            if model.is_subtype(p.ctx.type, type_name):
                out.append(p)
            elif p.is_resource and model.is_subtype(type_name, p.ctx.type):
                narrowed = _with_last(p, pred=_resource_is(type_name))
                out.append(Path(narrowed.steps, model.root(type_name), p.mode))
        return out

    def function(self, paths: list[Path], name: str) -> list[Path]:
        self.expect("sym", "(")
        if name in ("ofType", "as"):
            type_name = self.type_name()
            self.expect("sym", ")")
            return self.of_type(paths, type_name)
        if name == "where":
            atoms = self.condition()
            self.expect("sym", ")")
            return [_with_last(p, pred=_condition_predicate(atoms, p.ctx)) for p in paths]
        if name == "extension":
            url = self.expect("str")
            self.expect("sym", ")")
            pred = _equals([("url",)], url)
            return [_with_last(p, pred=pred) for p in self.navigate(paths, "extension")]
        if name == "first":
            self.expect("sym", ")")
            return [_with_last(p, index=0) for p in paths]
        if name == "exists":
            self.expect("sym", ")")
            if self.peek() is not None and not self.at("sym", "|") and not self.at("sym", ")"):
                raise Unsupported("exists() not at the end")
            return [Path(p.steps, p.ctx, "exists") for p in paths]
        raise Unsupported(f"function {name}()")

    def condition(self) -> list[tuple[str, tuple[str, ...], Any]]:
        """The ``and``-ed comparisons of a where(): ``('resolve', (T,), None)`` or ``('eq', names, literal)``."""
        atoms = [self.comparison()]
        while self.at("id", "and"):
            self.next()
            atoms.append(self.comparison())
        return atoms

    def comparison(self) -> tuple[str, tuple[str, ...], Any]:
        if self.at("id", "resolve"):
            self.next()
            self.expect("sym", "(")
            self.expect("sym", ")")
            self.expect("id", "is")
            return ("resolve", (self.type_name(),), None)
        names = [self.expect("id")]
        while self.at("sym", "."):
            self.next()
            names.append(self.expect("id"))
        self.expect("sym", "=")
        kind, value = self.next()
        literal: Any
        if kind == "str":
            literal = value
        elif kind == "id" and value in ("true", "false"):
            literal = value == "true"
        elif kind == "num":
            literal = int(value)
        else:
            raise Unsupported(f"unsupported literal {value!r} in where()")
        return ("eq", tuple(names), literal)


def _condition_predicate(atoms: list[tuple[str, tuple[str, ...], Any]], ctx: Ctx) -> Predicate:
    pred: Predicate | None = None
    for kind, names, literal in atoms:
        if kind == "resolve":
            pred = _and(pred, _resolve_is(names[0]))
            continue
        options: list[tuple[tuple[str, ...], Ctx]] = [((), ctx)]
        for name in names:
            nxt = []
            for keys, c in options:
                kids = model.children(c, name)
                if kids is None:
                    raise Unsupported(f"no element {c.path}.{name} in where()")
                nxt.extend((keys + (k.key,), k.ctx) for k in kids)
            options = nxt
        pred = _and(pred, _equals([keys for keys, _ in options], literal))
    assert pred is not None
    return pred
