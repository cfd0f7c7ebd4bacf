"""String normalisation and literal-reference parsing."""

from __future__ import annotations

import pytest

from fhir_server.indexing.references import parse_reference
from fhir_server.indexing.strings import normalize


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Shaw", "shaw"), ("José Núñez", "jose nunez"), ("MÜLLER", "muller"), ("Zoë", "zoe"), ("Ångström", "angstrom")],
)
def test_normalize_lowercases_and_strips_accents(value: str, expected: str) -> None:
    assert normalize(value) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123", None)),
        ("Patient/123/_history/4", ("Patient", "123", None)),
        ("http://example.org/fhir/Patient/123", ("Patient", "123", "http://example.org/fhir/Patient/123")),
        ("http://example.org/fhir/Patient/123/_history/2", ("Patient", "123", "http://example.org/fhir/Patient/123")),
        ("urn:uuid:1a2b", (None, None, "urn:uuid:1a2b")),
        ("http://example.org/not-a-resource", (None, None, "http://example.org/not-a-resource")),
        ("Unknown/1", (None, None, "Unknown/1")),
        ("#contained", None),
        ("", None),
    ],
)
def test_parse_reference(ref: str, expected: tuple[str | None, str | None, str | None] | None) -> None:
    assert parse_reference(ref) == expected
