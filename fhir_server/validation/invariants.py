"""FHIRPath invariants (``ElementDefinition.constraint``) evaluated with fhirpathpy.

Each expression is compiled once (``fhirpathpy.compile(expr, model=<R4 model>)``) and cached by its text.
``check(key, expression, data, ext, path, resource, root)`` evaluates it on one element instance and returns
``True`` (holds), ``False`` (violated) or ``None`` (not evaluated: fhirpathpy cannot compile or run it).

* The context node is built with the element's path (``Patient.contact``) or data type (``Period``) so that
  fhirpathpy's R4 model resolves choice types; ``%resource`` is the resource that holds the element (the contained
  or entry resource for nested ones) and ``%rootResource`` the resource being validated.
* fhirpathpy 2.x lacks ``hasValue()``, ``htmlChecks()`` and ``resolve()``; they are supplied through
  ``userInvocationTable`` (``resolve()`` only finds contained resources and Bundle entries, see ``_resolve``).
* Invariants that hold on every element (``ele-1`` on all elements, ``ext-1`` on every extension) run natively
  in Python for speed; their Python form is exactly the FHIRPath one (checked against fhirpathpy in the tests).
  So do the narrative checks ``txt-1`` (allowed XHTML elements/attributes, no scripts, event handlers, forms,
  frames) and ``txt-2`` (some non-whitespace content), both ``htmlChecks()`` in R4.
* Guards (``guard_of``) prove from the JSON alone that an invariant holds in common cases (``x.empty() or …`` with
  ``x`` absent, ...), so fhirpathpy runs only when the answer can be "violated".
* An invariant fhirpathpy cannot run (an unsupported function such as ``htmlChecks()``, ``conformsTo()``,
  ``resolve()``, ``memberOf()``, or a parse error) is skipped from then on and recorded in
  ``SKIPPED_INVARIANTS`` (key, expression, reason); validation never fails because of fhirpathpy.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

__all__ = ["NATIVE", "SKIPPED_INVARIANTS", "check", "evaluate_fhirpath"]

R4_MODEL = models["r4"]

#: (key, expression, reason) of every invariant that could not be evaluated, in the order found.
SKIPPED_INVARIANTS: list[tuple[str, str, str]] = []
_SKIPPED: set[str] = set()
_LOCK = threading.Lock()


def _has_value(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


def _no_trace(label: Any, value: Any) -> None:
    return None


_CURRENT = threading.local()  # .resource / .root of the evaluation in progress (for resolve())


@contextmanager
def stored_resources(resources: Mapping[str, dict[str, Any]] | None) -> Iterator[None]:
    """While validating: ``resolve()`` also finds these resources of the server by relative reference
    (``Type/id`` -> the stored JSON), so an invariant may compare a resource with what it references
    (e.g. a follow-up Task's dates with its referral's scheduled date)."""
    saved = getattr(_CURRENT, "stored", None)
    _CURRENT.stored = resources
    try:
        yield
    finally:
        _CURRENT.stored = saved


def _resolve(inputs: list[Any]) -> list[Any]:
    """``resolve()`` for references inside the resource being validated: ``#id`` (contained resources of
    ``%resource``, then of ``%rootResource``), in a Bundle ``fullUrl``s of its entries, and relative references
    to the server's resources the caller fetched (:func:`stored_resources`). Anything else resolves to nothing
    (R4 invariants treat an unresolvable reference as "cannot say", e.g. ctm-1's
    ``iif(empty(), true, …)``)."""
    resource = getattr(_CURRENT, "resource", None)
    root = getattr(_CURRENT, "root", None)
    out = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item
        if not isinstance(ref, str):
            continue
        found = None
        if ref.startswith("#"):
            for holder in (resource, root):
                for c in (holder.get("contained") or ()) if isinstance(holder, dict) else ():
                    if isinstance(c, dict) and c.get("id") == ref[1:]:
                        found = c
                        break
                if found is not None:
                    break
        elif isinstance(root, dict) and root.get("resourceType") == "Bundle":
            for e in root.get("entry") or ():
                if isinstance(e, dict) and e.get("fullUrl") == ref and isinstance(e.get("resource"), dict):
                    found = e["resource"]
                    break
        else:
            stored = getattr(_CURRENT, "stored", None)
            found = stored.get(ref) if stored else None
        if isinstance(found, dict) and isinstance(found.get("resourceType"), str):
            out.append(ResourceNode.create_node(found, found["resourceType"]))
    return out


_OPTIONS = {"userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}},
                                    "htmlChecks": {"fn": lambda inputs: _html_checks(inputs), "arity": {0: []}},
                                    "resolve": {"fn": _resolve, "arity": {0: []}}},
            "traceFn": _no_trace}


def fhirpath_text(expression: str) -> str:
    """The expression as given to fhirpathpy: ``descendants().as(T)`` becomes ``descendants().ofType(T)``.

    R4's dom-3 applies ``as()`` to a collection, which FHIRPath (and fhirpathpy) reject for more than one item;
    the Java reference validator is lenient there and ``ofType()`` is the intended meaning.
    """
    return expression.replace("descendants().as(", "descendants().ofType(")
_COMPILED: dict[str, Callable[..., list[Any]] | None] = {}


def _ele1(data: Any, ext: Any) -> bool:
    """ele-1 ``hasValue() or (children().count() > id.count())``."""
    if isinstance(data, dict):
        return any(k != "id" for k in data)
    if data is not None:
        return True
    return isinstance(ext, dict) and any(k != "id" for k in ext)


def _ext1(data: Any, ext: Any) -> bool:
    """ext-1 ``extension.exists() != value.exists()``."""
    if not isinstance(data, dict):
        return True
    has_ext = bool(data.get("extension"))
    has_value = any(k.startswith("value") and len(k) > 5 and k[5].isupper() for k in data)
    return has_ext != has_value


# -- htmlChecks() (txt-1, txt-2): not in fhirpathpy; the FHIR narrative rules (narrative.html) ---------------------

#: Elements allowed in narrative XHTML (HTML 4.0 chapters 7-11 and 15 without forms, plus a, img, tables).
_HTML_ELEMENTS = frozenset(
    "a abbr acronym b big blockquote br caption cite code col colgroup dd dfn div dl dt em h1 h2 h3 h4 h5 h6 hr i "
    "img li ol p pre q samp small span strong sub sup table tbody td tfoot th thead tr tt ul var".split())
_HTML_ATTRS = frozenset(
    "style class id lang xml:lang dir title xmlns href name src alt width height border cellpadding cellspacing "
    "summary align valign colspan rowspan span abbr axis headers scope char charoff frame rules start type value "
    "compact accesskey tabindex shape coords hreflang charset rel rev target cite datetime".split())


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text = False
        self.images = False
        self.depth = 0
        self.root: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.root is None:
            self.root = tag
        if tag not in _HTML_ELEMENTS:
            self.problems.append(f"element <{tag}>")
        self.images |= tag == "img"
        for name, value in attrs:
            if name.startswith("xmlns"):
                continue
            if name not in _HTML_ATTRS or name.startswith("on"):
                self.problems.append(f"attribute {name} on <{tag}>")
            elif name in ("href", "src") and value and value.strip().lower().startswith(("javascript:", "vbscript:")):
                self.problems.append(f"script url in {name}")

    def handle_data(self, data: str) -> None:
        self.text |= bool(data.strip())


def _html(data: Any) -> _Html | None:
    if not isinstance(data, str):
        return None
    parser = _Html()
    try:
        parser.feed(data)
        parser.close()
    except Exception:  # noqa: BLE001 - unparsable markup counts as a problem
        parser.problems.append("unparsable markup")
    if parser.root != "div":
        parser.problems.append("the root element must be <div>")
    return parser


def _txt1(data: Any, ext: Any) -> bool:
    """txt-1 ``htmlChecks()``: only the basic formatting elements and attributes, no scripts, forms or frames."""
    p = _html(data)
    return p is None or not p.problems


def _txt2(data: Any, ext: Any) -> bool:
    """txt-2 ``htmlChecks()``: some non-whitespace content (text or an image)."""
    p = _html(data)
    return p is None or p.text or p.images


def _html_checks(inputs: list[Any]) -> list[bool]:
    return [all(_txt1(i, None) and _txt2(i, None) for i in inputs)]


#: key -> (expression it implements, Python function of (data, primitive extension)).
NATIVE: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "ele-1": ("hasValue() or (children().count() > id.count())", _ele1),
    "ext-1": ("extension.exists() != value.exists()", _ext1),
    "txt-1": ("htmlChecks()", _txt1),
    "txt-2": ("htmlChecks()", _txt2),
}


def _skip(key: str, expression: str, reason: str) -> None:
    with _LOCK:
        if expression not in _SKIPPED:
            _SKIPPED.add(expression)
            SKIPPED_INVARIANTS.append((key, expression, reason[:200]))
        _COMPILED[expression] = None


def _record(key: str, expression: str, reason: str) -> None:
    with _LOCK:
        if (key, expression, reason[:200]) not in SKIPPED_INVARIANTS and len(SKIPPED_INVARIANTS) < 1000:
            SKIPPED_INVARIANTS.append((key, expression, reason[:200]))


def _compiled(key: str, expression: str) -> Callable[..., list[Any]] | None:
    try:
        return _COMPILED[expression]
    except KeyError:
        pass
    try:
        fn = fhirpathpy.compile(fhirpath_text(expression), model=R4_MODEL, options=_OPTIONS)
    except Exception as e:  # noqa: BLE001 - any parser failure means "cannot evaluate"
        _skip(key, expression, f"compile: {type(e).__name__}: {e}")
        return None
    _COMPILED[expression] = fn
    return fn


def evaluate_fhirpath(key: str, expression: str, data: Any, ext: Any, path: str, resource: Any, root: Any
                      ) -> list[Any] | None:
    """The raw fhirpathpy result, or None when the expression cannot be evaluated (recorded as skipped)."""
    fn = _compiled(key, expression)
    if fn is None:
        return None
    try:
        node = ResourceNode.create_node(data, path, ext)
        _CURRENT.resource, _CURRENT.root = resource, root
        return fn(node, {"resource": resource, "rootResource": root})
    except RecursionError:
        return None
    except Exception as e:  # noqa: BLE001 - unsupported functions etc.: skip, never crash validation
        if "Not implemented" in str(e):
            _skip(key, expression, f"evaluate: {type(e).__name__}: {e}")  # from now on
        else:
            _record(key, expression, f"evaluate (this instance only): {type(e).__name__}: {e}")
        return None


# ---------------------------------------------------------------------------------------------------------------
# Guards: cheap, sound proofs that an invariant holds, so that fhirpathpy runs only when it can matter.
#
# FHIRPath ``a or b`` is true when either side is true (even if the other is empty), ``a and b`` needs both, and
# ``a implies b`` is true when ``a`` is false. Three kinds of operand are decided from the JSON alone:
#   * ``x(.y|.where(...)|.trace(...))*.empty()`` / ``….exists().not()``: true when ``x`` is absent (navigation,
#     where() and trace() on an empty collection stay empty);
#   * ``x.hasValue().not()``: true when ``x`` has no primitive value;
#   * ``x.startsWith('lit').not()``: true when ``x`` is a string that does not start with ``lit``;
# and ``x.exists() implies …`` is true when ``x`` is absent.

_IDENT = re.compile(r"[A-Za-z_]\w*")
Guard = Callable[[Any], bool]


def _split_top(expr: str, op: str) -> list[str]:
    parts, depth, quote, start, i = [], 0, False, 0, 0
    token = f" {op} "
    while i < len(expr):
        c = expr[i]
        if c == "'" and (i == 0 or expr[i - 1] != "\\"):
            quote = not quote
        elif not quote:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and expr.startswith(token, i):
                parts.append(expr[start:i].strip())
                i += len(token)
                start = i
                continue
        i += 1
    parts.append(expr[start:].strip())
    return parts


def _strip_parens(expr: str) -> str:
    """``((a or b))`` -> ``a or b`` (only parentheses that enclose the whole expression; quote-aware)."""
    while expr.startswith("(") and expr.endswith(")"):
        depth, quote = 0, False
        for i, c in enumerate(expr):
            if c == "'" and (i == 0 or expr[i - 1] != "\\"):
                quote = not quote
            elif not quote:
                depth += c == "("
                depth -= c == ")"
                if depth == 0 and i < len(expr) - 1:
                    return expr
        expr = expr[1:-1].strip()
    return expr


def _chain_head(expr: str, ending: tuple[str, ...]) -> str | None:
    """``contained.where(x).meta.empty()`` -> ``contained`` (only navigation, where() and trace() in between)."""
    for end in ending:
        if expr.endswith(end):
            body = expr[: -len(end)]
            break
    else:
        return None
    m = _IDENT.match(body)
    if m is None:
        return None
    head, i = m.group(0), m.end()
    while i < len(body):
        if body[i] != ".":
            return None
        m = _IDENT.match(body, i + 1)
        if m is None:
            return None
        i = m.end()
        if m.group(0) in ("where", "trace") and i < len(body) and body[i] == "(":
            depth = 0
            while i < len(body):
                depth += body[i] == "("
                depth -= body[i] == ")"
                i += 1
                if depth == 0:
                    break
        elif i < len(body) and body[i] == "(":
            return None
    return head


def _absent(data: Any, name: str) -> bool:
    if not isinstance(data, dict):
        return False
    if name in data or "_" + name in data:
        return False
    n = len(name)
    return not any(k.startswith(name) and len(k) > n and k[n].isupper() for k in data)


_HAS_VALUE_NOT = re.compile(r"^([A-Za-z]\w*)\.hasValue\(\)\.not\(\)$")
_STARTS_NOT = re.compile(r"^([A-Za-z]\w*)\.startsWith\('([^'\\]*)'\)\.not\(\)$")
_EXISTS_IMPLIES = re.compile(r"^([A-Za-z]\w*)\.exists\(\)$")


def _operand_guard(expr: str) -> Guard | None:
    expr = _strip_parens(expr)
    head = _chain_head(expr, (".empty()", ".exists().not()"))
    if head is not None:
        return lambda d, h=head: _absent(d, h)
    m = _HAS_VALUE_NOT.match(expr)
    if m:
        name = m.group(1)
        return lambda d: isinstance(d, dict) and (d.get(name) is None or isinstance(d.get(name), (dict, list)))
    m = _STARTS_NOT.match(expr)
    if m:
        name, lit = m.group(1), m.group(2)
        return lambda d: isinstance(d, dict) and isinstance(d.get(name), str) and not d[name].startswith(lit)
    return None


def guard_of(expression: str) -> Guard | None:
    """A function proving from the JSON that ``expression`` holds (True), or None when no proof is possible."""
    expr = _strip_parens(expression.strip())
    ors = _split_top(expr, "or")
    if len(ors) > 1:
        gs = [g for g in (_operand_guard(o) for o in ors) if g is not None]
        return (lambda d: any(g(d) for g in gs)) if gs else None
    ands = _split_top(expr, "and")
    if len(ands) > 1:
        gs = [_operand_guard(a) for a in ands]
        if all(g is not None for g in gs):
            return lambda d: all(g(d) for g in gs)  # type: ignore[misc]
        return None
    imp = _split_top(expr, "implies")
    if len(imp) == 2:
        m = _EXISTS_IMPLIES.match(_strip_parens(imp[0]))
        if m:
            name = m.group(1)
            return lambda d: _absent(d, name)
        return None
    return _operand_guard(expr)


_GUARDS: dict[str, Guard | None] = {}
#: Tests set this to evaluate every guarded invariant with fhirpathpy as well and collect disagreements.
VERIFY_GUARDS = False
GUARD_DISAGREEMENTS: list[tuple[str, str, Any]] = []


def check(key: str, expression: str, data: Any, ext: Any, path: str, resource: Any, root: Any) -> bool | None:
    """Whether invariant ``key`` holds on this element instance (None: could not be evaluated)."""
    native = NATIVE.get(key)
    if native is not None and native[0] == expression:
        return native[1](data, ext)
    if expression in _SKIPPED:
        return None
    try:
        guard = _GUARDS[expression]
    except KeyError:
        guard = _GUARDS[expression] = guard_of(expression)
    if guard is not None and guard(data):
        if VERIFY_GUARDS:
            result = evaluate_fhirpath(key, expression, data, ext, path, resource, root)
            if result is not None and len(result) == 1 and result[0] is False:
                GUARD_DISAGREEMENTS.append((key, expression, data))
        return True
    result = evaluate_fhirpath(key, expression, data, ext, path, resource, root)
    if result is None:
        return None
    return not (len(result) == 1 and result[0] is False)
