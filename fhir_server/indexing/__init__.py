"""Search-index extraction: search-parameter registry, compiled extractors, date/string helpers."""

from fhir_server.indexing.dates import DATE_MAX, DATE_MIN, format_instant, parse_date_range, to_instant_us
from fhir_server.indexing.extract import extract_index_rows, extract_rows
from fhir_server.indexing.references import parse_reference
from fhir_server.indexing.registry import SearchParam, SearchParamRegistry
from fhir_server.indexing.strings import normalize

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "SearchParam",
    "SearchParamRegistry",
    "extract_index_rows",
    "extract_rows",
    "format_instant",
    "normalize",
    "parse_date_range",
    "parse_reference",
    "to_instant_us",
]
