"""The terminology operations (R4 terminology-service.html), registered with the server's operation
registry: ``ValueSet/$expand``, ``ValueSet/$validate-code`` (also ``CodeSystem/$validate-code``),
``CodeSystem/$lookup`` and ``CodeSystem/$subsumes`` — type level (by ``url`` / ``system``) and instance
level (``ValueSet/[id]/$expand`` reads the stored resource).

Canonicals are looked up in the database first (resources created through the API), then in the store
(vendored R4 terminology plus runtime additions). Status codes: unknown ValueSet/CodeSystem → 404
(instance and ``url`` alike); missing or malformed parameters → 400; a value set that cannot be expanded
(loop, code system not present, too large, unsupported filter) → 422.

A code of a code system this server does not carry (``content`` = ``not-present``: SNOMED CT, LOINC, …) is
answered ``result`` = true with a message saying it was **not checked** (as tx.fhir.org does for unknown
systems: a valid code must not be reported invalid); the Python API (``terminology.validate_code``) gives
``result=None`` for it so the validator can choose the issue severity.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_server.interactions.operations import OperationCall, register
from fhir_server.interactions.request import Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError
from terminology.codesystem import CodeSystemIndex, index_of
from terminology.db import resolver_for
from terminology.errors import TerminologyError, not_present_message
from terminology.expand import Item, expand
from terminology.store import Layered, split_canonical
from terminology.validate import CodeValidation, check, check_in_system

MAX_COUNT = 10_000  # at most this many codes in one expansion page


def _error(err: TerminologyError) -> FhirError:
    return FhirError.of(err.status, err.code, err.message)


def _bad(call: OperationCall, message: str, code: str = "invalid") -> FhirError:
    return FhirError.of(400, code, f"${call.name}: {message}")


def _str(call: OperationCall, name: str) -> str | None:
    v = call.get(name)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise _bad(call, f"parameter '{name}' must be a non-empty string")
    return v


def _int(call: OperationCall, name: str, default: int, maximum: int) -> int:
    v = call.get(name)
    if v is None:
        return default
    if isinstance(v, str) and v.isdigit() and len(v) < 10:
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise _bad(call, f"parameter '{name}' must be a non-negative integer")
    return min(v, maximum)


def _bool(call: OperationCall, name: str) -> bool:
    v = call.get(name)
    if v is None:
        return False
    if v in (True, "true"):
        return True
    if v in (False, "false"):
        return False
    raise _bad(call, f"parameter '{name}' must be true or false")


def _coding(call: OperationCall, name: str) -> dict[str, Any] | None:
    v = call.get(name)
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("code"), str):
        raise _bad(call, f"parameter '{name}' must be a Coding with a code")
    return v


async def _stored(svc: Services, call: OperationCall) -> dict[str, Any]:
    """The instance an instance-level call is on (404 when it does not exist or was deleted)."""
    assert call.rtype is not None and call.rid is not None
    stored = await svc.repo.read(call.rtype, call.rid)
    if stored is None or stored.deleted or stored.body is None:
        raise FhirError.of(404, "not-found", f"{call.rtype}/{call.rid[:64]} is not known")
    return orjson.loads(stored.body)


async def _value_set(svc: Services, call: OperationCall) -> tuple[dict[str, Any], str, Layered]:
    """The value set the call is about (instance, ``valueSet`` resource or ``url``) and a resolver holding
    the database resources it refers to."""
    if call.rid is not None:
        vs = await _stored(svc, call)
        return vs, vs.get("url") or f"ValueSet/{call.rid}", await resolver_for(svc, [], extra=[vs])
    inline = call.resource("valueSet")
    if inline is not None:
        if inline.get("resourceType") != "ValueSet":
            raise _bad(call, "parameter 'valueSet' must be a ValueSet")
        return inline, inline.get("url") or "(the valueSet parameter)", await resolver_for(svc, [], extra=[inline])
    url = _str(call, "url")
    if url is None:
        raise _bad(call, "give the value set: 'url', a 'valueSet' resource (POST), or call it on ValueSet/[id]",
                   "required")
    base, version = split_canonical(url)
    version = _str(call, "valueSetVersion") or version
    resolver = await resolver_for(svc, [("ValueSet", base)])
    vs = resolver.get("ValueSet", base, version)
    if vs is None:
        raise FhirError.of(404, "not-found", f"ValueSet {url} is unknown to this server")
    return vs, base, resolver


# -- $expand -----------------------------------------------------------------------------------------

def _pick_display(item: Item, language: str | None) -> str | None:
    if language:
        lang = language.lower()
        for lng, _, value in item.designations:
            if isinstance(lng, str) and (lng.lower() == lang or lng.lower().startswith(lang + "-")):
                return value
    return item.display


def _contains(item: Item, language: str | None, designations: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"system": item.system}
    if item.version:
        out["version"] = item.version
    if item.abstract:
        out["abstract"] = True
    if item.inactive:
        out["inactive"] = True
    out["code"] = item.code
    display = _pick_display(item, language)
    if display is not None:
        out["display"] = display
    if designations and item.designations:
        out["designation"] = [{k: v for k, v in (("language", lng), ("value", value)) if v is not None}
                              | ({"use": {"code": use}} if use else {})
                              for lng, use, value in item.designations]
    return out


def _matches(item: Item, text: str) -> bool:
    return text in item.code.casefold() or any(
        text in d.casefold() for d in (item.display, *(v for _, _, v in item.designations)) if d)


@register("expand", types=("ValueSet",), type_level=True, instance=True)
async def expand_op(svc: Services, call: OperationCall) -> Result:
    vs, _, resolver = await _value_set(svc, call)
    text = _str(call, "filter")
    offset = _int(call, "offset", 0, 10**9)
    count = _int(call, "count", MAX_COUNT, MAX_COUNT)
    language = _str(call, "displayLanguage")
    designations = _bool(call, "includeDesignations")
    active_only = _bool(call, "activeOnly")
    try:
        items = expand(resolver, vs).items
    except TerminologyError as err:
        raise _error(err) from None
    if active_only:
        items = [i for i in items if not i.inactive]
    if text:
        folded = text.casefold()
        items = [i for i in items if _matches(i, folded)]
    page = items[offset:offset + count]
    params: list[dict[str, Any]] = []
    for name, value, kind in (("filter", text, "valueString"), ("displayLanguage", language, "valueCode"),
                              ("offset", offset if call.get("offset") is not None else None, "valueInteger"),
                              ("count", count if call.get("count") is not None else None, "valueInteger")):
        if value is not None:
            params.append({"name": name, kind: value})
    expansion: dict[str, Any] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total": len(items), "offset": offset}
    if params:
        expansion["parameter"] = params
    if page:
        expansion["contains"] = [_contains(i, language, designations) for i in page]
    # a copy: the value set may be a store object that later response shaping must not change
    out = orjson.loads(orjson.dumps({k: v for k, v in vs.items() if k not in ("text", "expansion", "meta")}))
    out["resourceType"] = "ValueSet"
    out["expansion"] = expansion
    return Result(200, resource=out)


# -- $validate-code ------------------------------------------------------------------------------------

def _parameters(v: CodeValidation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": v.result is not False}]
    message = v.message
    if v.result is None:
        message = "Not checked: " + message
    params.append({"name": "message", "valueString": message})
    if v.display:
        params.append({"name": "display", "valueString": v.display})
    return {"resourceType": "Parameters", "parameter": params}


def _codings(call: OperationCall) -> tuple[list[tuple[str | None, str, str | None]], bool]:
    """The codings to check (system, code, display) and whether they came from a CodeableConcept."""
    code = _str(call, "code")
    coding = _coding(call, "coding")
    cc = call.get("codeableConcept")
    given = [x is not None for x in (code, coding, cc)]
    if sum(given) != 1:
        raise _bad(call, "give exactly one of 'code' (with 'system'), 'coding' or 'codeableConcept'", "required")
    if code is not None:
        return [(_str(call, "system"), code, _str(call, "display"))], False
    if coding is not None:
        return [(coding.get("system"), coding["code"], coding.get("display"))], False
    if not isinstance(cc, dict) or not isinstance(cc.get("coding"), list) or not cc["coding"] or not all(
            isinstance(c, dict) and isinstance(c.get("code"), str) for c in cc["coding"]):
        raise _bad(call, "parameter 'codeableConcept' must have codings with codes")
    return [(c.get("system"), c["code"], c.get("display")) for c in cc["coding"]], True


def _best(results: list[CodeValidation]) -> CodeValidation:
    for want in (True, None, False):
        for r in results:
            if r.result is want:
                return r
    return results[0]


@register("validate-code", types=("ValueSet", "CodeSystem"), type_level=True, instance=True)
async def validate_code_op(svc: Services, call: OperationCall) -> Result:
    codings, _ = _codings(call)
    if call.rtype == "CodeSystem":
        return Result(200, resource=_parameters(await _validate_in_system(svc, call, codings)))
    vs, name, resolver = await _value_set(svc, call)
    try:
        exp = expand(resolver, vs, lenient=True)
    except TerminologyError as err:
        raise _error(err) from None
    results = [check(resolver, vs, name, system, code, display, exp) for system, code, display in codings]
    return Result(200, resource=_parameters(_best(results)))


async def _validate_in_system(svc: Services, call: OperationCall,
                              codings: list[tuple[str | None, str, str | None]]) -> CodeValidation:
    if call.rid is not None:
        cs = await _stored(svc, call)
        system = cs.get("url")
        resolver = Layered(await resolver_for(svc, []), {("CodeSystem", system): [cs]} if system else {})
    else:
        system = _str(call, "url") or codings[0][0]
        if not system:
            raise _bad(call, "give the code system: 'url' or 'system'", "required")
        resolver = await resolver_for(svc, [("CodeSystem", system)])
    if resolver.get("CodeSystem", system or "") is None and call.rid is None:
        raise FhirError.of(404, "not-found", f"CodeSystem {system} is unknown to this server")
    results = [check_in_system(resolver, system or "", code, display, _str(call, "version"))
               if s in (None, system) else CodeValidation(False, f"The code system {s} is not {system}")
               for s, code, display in codings]
    return _best(results)


# -- $lookup / $subsumes -------------------------------------------------------------------------------

async def _code_system(svc: Services, call: OperationCall, system: str | None) -> CodeSystemIndex:
    if call.rid is not None:
        cs = await _stored(svc, call)
    else:
        if not system:
            raise _bad(call, "parameter 'system' (or a coding with a system) is required", "required")
        resolver = await resolver_for(svc, [("CodeSystem", system)])
        cs = resolver.get("CodeSystem", system, _str(call, "version"))
        if cs is None:
            raise FhirError.of(404, "not-found", f"CodeSystem {system} is unknown to this server")
    idx = index_of(cs)
    if not idx.present:
        raise FhirError.of(422, "not-supported", f"The {not_present_message(idx.url)}: its codes cannot be "
                                                 f"looked up here")
    return idx


@register("lookup", types=("CodeSystem",), type_level=True, instance=True)
async def lookup_op(svc: Services, call: OperationCall) -> Result:
    code, system = _str(call, "code"), _str(call, "system")
    coding = _coding(call, "coding")
    if (code is None) == (coding is None):
        raise _bad(call, "give 'code' (with 'system') or 'coding'", "required")
    if coding is not None:
        code, system = coding["code"], coding.get("system")
    assert code is not None
    idx = await _code_system(svc, call, system)
    entry = idx.get(code)
    if entry is None:
        raise FhirError.of(404, "not-found", f"Code '{code}' is not in code system {idx.url}")
    language = _str(call, "displayLanguage")
    item = Item(idx.url, entry.code, entry.display, designations=tuple(entry.designations))
    params: list[dict[str, Any]] = [{"name": "name", "valueString": idx.name or idx.url}]
    if idx.version:
        params.append({"name": "version", "valueString": idx.version})
    display = _pick_display(item, language)
    if display is not None:
        params.append({"name": "display", "valueString": display})
    for lng, use, value in entry.designations:
        part: list[dict[str, Any]] = []
        if lng:
            part.append({"name": "language", "valueCode": lng})
        if use:
            part.append({"name": "use", "valueCoding": {"code": use}})
        part.append({"name": "value", "valueString": value})
        params.append({"name": "designation", "part": part})
    props: list[tuple[str, dict[str, Any]]] = [("parent", {"valueCode": p}) for p in entry.parents]
    props += [("child", {"valueCode": c}) for c in entry.children]
    for pcode, value in entry.properties:
        if pcode in ("parent", "child", "subsumedBy") or value is None:
            continue
        kind = ("valueBoolean" if isinstance(value, bool) else "valueInteger" if isinstance(value, int)
                else "valueCoding" if isinstance(value, dict) else "valueString")
        props.append((pcode, {kind: value}))
    wanted = set(call.all("property"))
    for pcode, value in props:
        if not wanted or pcode in wanted:
            params.append({"name": "property", "part": [{"name": "code", "valueCode": pcode},
                                                        {"name": "value", **value}]})
    return Result(200, resource={"resourceType": "Parameters", "parameter": params})


@register("subsumes", types=("CodeSystem",), type_level=True, instance=True)
async def subsumes_op(svc: Services, call: OperationCall) -> Result:
    a, b = _str(call, "codeA"), _str(call, "codeB")
    ca, cb = _coding(call, "codingA"), _coding(call, "codingB")
    system = _str(call, "system")
    if a is not None and b is not None and ca is None and cb is None:
        pass
    elif ca is not None and cb is not None and a is None and b is None:
        systems = {ca.get("system"), cb.get("system")} - {None}
        if len(systems) > 1 or (system and systems and system not in systems):
            raise _bad(call, "codingA and codingB must be of the same code system")
        system = system or next(iter(systems), None)
        a, b = ca["code"], cb["code"]
    else:
        raise _bad(call, "give 'codeA' and 'codeB' (with 'system'), or 'codingA' and 'codingB'", "required")
    idx = await _code_system(svc, call, system)
    for code in (a, b):
        if idx.get(code) is None:
            raise _bad(call, f"code '{code}' is not in code system {idx.url}", "code-invalid")
    outcome = idx.subsumes(a, b)
    return Result(200, resource={"resourceType": "Parameters", "parameter": [{"name": "outcome",
                                                                              "valueCode": outcome}]})
