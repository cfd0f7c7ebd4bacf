"""FHIR R4 search: parse the parameters of a search and compile them to portable SQL.

    parsed = parse_search("Patient", [("name", "smi")], registry, base_url="http://host/fhir")
    sql, args = compile_page(parsed)          # rows: rkey, id, version, last_updated, body, rtype, *sort values
    sql, args = compile_count(parsed)         # SELECT count(*)
    sql, args = compile_include(rtype, inc, rkeys, base, reverse=False)   # rows: ... + rtype
    parsed.next_link_params(row_cursor(parsed, last_row))                  # params for the next link
    parsed.post_filters                       # Python checks on each candidate body (composites, :of-type)
"""

from fhir_server.search.compiler import (
    compile_count,
    compile_include,
    compile_includes,
    compile_match_rows,
    compile_page,
    criterion_sql,
    row_cursor,
)
from fhir_server.search.model import (
    ChainTarget,
    CompartmentValue,
    Criterion,
    Cursor,
    HasValue,
    Include,
    ParsedSearch,
    QuantityValue,
    RangeValue,
    ReferenceValue,
    SortKey,
    StringValue,
    TextValue,
    TokenValue,
    UriValue,
    Visibility,
    decode_cursor,
    encode_cursor,
)
from fhir_server.search.parser import parse_compartment_search, parse_search

__all__ = [
    "ChainTarget",
    "CompartmentValue",
    "Criterion",
    "Cursor",
    "HasValue",
    "Include",
    "ParsedSearch",
    "QuantityValue",
    "RangeValue",
    "ReferenceValue",
    "SortKey",
    "StringValue",
    "TextValue",
    "TokenValue",
    "UriValue",
    "Visibility",
    "compile_count",
    "compile_include",
    "compile_includes",
    "compile_match_rows",
    "compile_page",
    "criterion_sql",
    "decode_cursor",
    "encode_cursor",
    "parse_compartment_search",
    "parse_search",
    "row_cursor",
]
