"""HTTP wire details shared by the FHIR routes: reading a request, content negotiation, Prefer,
and sending a response. Plain ASGI (no framework) because this is the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from fhir_server.outcome import FhirError
from fhir_server.validation.limits import check_depth

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
_XML_HINTS = ("xml",)


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes = b""
    #: result-shaping choices taken from the request
    pretty: bool = False
    prefer_return: str | None = None
    prefer_strict: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def parse_scope(scope: dict[str, Any]) -> Request:
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        key = k.decode("latin-1").lower()
        val = v.decode("latin-1")
        headers[key] = headers[key] + ", " + val if key in headers else val
    qs = scope.get("query_string", b"")
    query = parse_qsl(qs.decode("utf-8", "replace"), keep_blank_values=True) if qs else []
    req = Request(scope["method"], unquote(scope["path"]), query, headers)
    negotiate(req)
    return req


def negotiate(req: Request) -> None:
    """_format / Accept / _pretty / Prefer → the request's response choices; XML → 406."""
    fmt = next((v for k, v in req.query if k == "_format"), None)
    if fmt is not None:
        f = fmt.strip().lower()
        if any(h in f for h in _XML_HINTS) or f not in ("json", "application/json", "application/fhir+json",
                                                         "application/json+fhir", "text/json"):
            raise FhirError.of(406, "not-supported", f"_format '{fmt[:40]}' is not offered: this server speaks "
                               "FHIR JSON only (application/fhir+json)")
    else:
        accept = req.headers.get("accept")
        if accept and not accepts_json(accept):
            raise FhirError.of(406, "not-supported", "This server only produces application/fhir+json")
    if any(k == "_pretty" and v.strip().lower() == "true" for k, v in req.query):
        req.pretty = True
    prefer = req.headers.get("prefer")
    if prefer:
        for part in prefer.split(","):
            for item in part.split(";"):
                name, _, value = item.strip().partition("=")
                value = value.strip().strip('"').lower()
                if name.lower() == "return" and value in ("minimal", "representation", "operationoutcome"):
                    req.prefer_return = value
                elif name.lower() == "handling":
                    req.prefer_strict = value == "strict"


def accepts_json(accept: str) -> bool:
    for part in accept.split(","):
        mt = part.split(";")[0].strip().lower()
        if mt in ("*/*", "application/*", "") or "json" in mt or mt == "text/html" or mt == "text/*":
            return True
    return False


def media_type(req: Request) -> str | None:
    ct = req.headers.get("content-type")
    return ct.split(";")[0].strip().lower() if ct else None


def json_body(req: Request, *, patch: bool = False, max_depth: int = 64) -> Any:
    """Parse the request body as JSON (415 for other media types, 400 for malformed JSON)."""
    mt = media_type(req)
    if patch:
        if mt != "application/json-patch+json":
            raise FhirError.of(415, "not-supported", "PATCH takes a JSON Patch (application/json-patch+json); "
                               "FHIRPath Patch and XML Patch are not supported")
    elif mt is not None and mt not in _JSON_TYPES:
        raise FhirError.of(415, "not-supported", f"Unsupported Content-Type '{mt[:60]}': send application/fhir+json")
    if not req.body.strip():
        raise FhirError.of(400, "invalid", "The request has no body")
    if b"\\u0000" in req.body:
        raise FhirError.of(400, "invalid", "JSON strings may not contain the NUL character (\\u0000)")
    try:
        value = orjson.loads(req.body)
    except orjson.JSONDecodeError as e:
        raise FhirError.of(400, "invalid", f"Malformed JSON: {str(e).split(':')[0]} at position {e.pos}") from None
    check_depth(value, max_depth)
    return value


async def read_body(receive: Any, req: Request, limit: int) -> None:
    declared = req.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise FhirError.of(400, "invalid", "Bad Content-Length")
        if int(declared) > limit:
            raise FhirError.of(413, "too-costly", f"The body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise FhirError.of(413, "too-costly", f"The body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
        more = msg.get("more_body", False)
    req.body = b"".join(chunks)


_HTTP_DATES: dict[int, str] = {}


def http_date(us: int) -> str:
    """RFC 7231 date of ``us`` (µs since the epoch); memoised per second, it is on every read."""
    sec = us // 1_000_000
    out = _HTTP_DATES.get(sec)
    if out is None:
        if len(_HTTP_DATES) > 4096:
            _HTTP_DATES.clear()
        out = _HTTP_DATES[sec] = formatdate(sec, usegmt=True)
    return out


def parse_http_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1_000_000)
    except (TypeError, ValueError, IndexError):
        raise FhirError.of(400, "invalid", "Bad If-Modified-Since date") from None


async def send(send_fn: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]],
               *, head: bool = False) -> None:
    hdrs = [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(body)).encode()), *headers] \
        if body or status not in (204, 304) else headers
    await send_fn({"type": "http.response.start", "status": status, "headers": hdrs})
    await send_fn({"type": "http.response.body", "body": b"" if head or status in (204, 304) else body})


def dumps(resource: Any, pretty: bool) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_INDENT_2 if pretty else 0)
