"""check_depth: JSON nesting limit, both sides of it, without recursion."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.outcome import FhirError
from fhir_server.validation.limits import check_depth
from fhir_server.validation.structure import validate_structure


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of alternating objects and arrays around ``leaf``."""
    value = leaf
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize(("value", "depth"), [
    (1, 0), ("x", 0), (None, 0), ({}, 1), ([], 1), ({"a": 1}, 1), ([1, 2], 1), ({"a": [1]}, 2), ([{}], 2),
    ({"a": {"b": {"c": [1, {"d": 2}]}}, "e": 1}, 5),
])
def test_depth_of_small_values(value: Any, depth: int) -> None:
    check_depth(value, depth)
    if depth:
        with pytest.raises(FhirError):
            check_depth(value, depth - 1)


@pytest.mark.parametrize("limit", [1, 2, 10, 64])
def test_both_sides_of_the_limit(limit: int) -> None:
    check_depth(nested(limit), limit)
    with pytest.raises(FhirError) as e:
        check_depth(nested(limit + 1), limit)
    assert e.value.status == 400
    assert e.value.issues[0].code == "too-long"
    assert str(limit) in e.value.issues[0].diagnostics


def test_the_deepest_branch_counts() -> None:
    value = {"shallow": [1, 2, 3], "deep": nested(20), "also": {"x": 1}}
    check_depth(value, 21)
    with pytest.raises(FhirError):
        check_depth(value, 20)


def test_far_deeper_than_the_recursion_limit() -> None:
    value = nested(200_000)
    with pytest.raises(FhirError):
        check_depth(value, 64)
    check_depth(value, 200_000)


def test_wide_values_are_fine() -> None:
    check_depth({"a": [{"b": i} for i in range(10_000)]}, 3)


def test_negative_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        check_depth({}, -1)


def test_structure_validation_of_absurd_nesting_does_not_crash() -> None:
    """Callers bound depth first; if one does not, the validator still answers instead of raising."""
    ext: dict[str, Any] = {"url": "http://x", "valueString": "leaf"}
    for _ in range(5_000):
        ext = {"url": "http://x", "extension": [ext]}
    issues = validate_structure({"resourceType": "Patient", "extension": [ext]})
    assert [i.code for i in issues] == ["too-long"]
