"""FHIR R4 search: parse the parameters of a type-level search and compile them to portable SQL.

    parsed = parse_search("Patient", [("name", "smi")], registry, base_url="http://host/fhir")
    sql, args = compile_page(parsed)          # rows: rkey, id, version, last_updated, body (count+1 max)
    sql, args = compile_count(parsed)         # SELECT count(*)
    queries = compile_includes(parsed, rkeys) # [(sql, args)], rows: ... + rtype
    parsed.next_link_params(last_rkey)        # params for the next link
"""

from fhir_server.search.compiler import compile_count, compile_includes, compile_page, criterion_sql
from fhir_server.search.model import (
    Criterion,
    Include,
    ParsedSearch,
    QuantityValue,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    decode_cursor,
    encode_cursor,
)
from fhir_server.search.parser import parse_search

__all__ = [
    "Criterion",
    "Include",
    "ParsedSearch",
    "QuantityValue",
    "RangeValue",
    "ReferenceValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "compile_count",
    "compile_includes",
    "compile_page",
    "criterion_sql",
    "decode_cursor",
    "encode_cursor",
    "parse_search",
]
