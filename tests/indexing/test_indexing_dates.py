"""Date range parsing: precisions, timezones, malformed input, helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_server.indexing.dates import DATE_MAX, DATE_MIN, format_instant, parse_date_range, to_instant_us


def us(*args: int) -> int:
    """Microseconds since the epoch of a UTC datetime, computed independently with the stdlib."""
    dt = datetime(*args, tzinfo=UTC)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // _ONE_US


_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1) - datetime(1970, 1, 1)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024", us(2024, 1, 1), us(2025, 1, 1) - 1),
        ("2024-02", us(2024, 2, 1), us(2024, 3, 1) - 1),  # leap-year February
        ("2023-02", us(2023, 2, 1), us(2023, 3, 1) - 1),
        ("2024-12", us(2024, 12, 1), us(2025, 1, 1) - 1),
        ("2024-03-05", us(2024, 3, 5), us(2024, 3, 6) - 1),
        ("2024-03-05T10:00:00Z", us(2024, 3, 5, 10), us(2024, 3, 5, 10, 0, 1) - 1),
        ("2024-03-05T10:00:00", us(2024, 3, 5, 10), us(2024, 3, 5, 10, 0, 1) - 1),  # no zone: UTC
        ("2024-03-05T10:00:00+05:00", us(2024, 3, 5, 5), us(2024, 3, 5, 5, 0, 1) - 1),
        ("2024-03-05T01:30:00-02:30", us(2024, 3, 5, 4), us(2024, 3, 5, 4, 0, 1) - 1),
        ("2016-10-31T08:25:05+10:00", us(2016, 10, 30, 22, 25, 5), us(2016, 10, 30, 22, 25, 6) - 1),
        ("2024-03-05T10:00:00.123Z", us(2024, 3, 5, 10, 0, 0, 123000), us(2024, 3, 5, 10, 0, 0, 123000)),
        ("2024-03-05T10:00:00.1234567Z", us(2024, 3, 5, 10, 0, 0, 123456), us(2024, 3, 5, 10, 0, 0, 123456)),
        ("2024-03-05T10:15Z", us(2024, 3, 5, 10, 15), us(2024, 3, 5, 10, 16) - 1),
        ("1969-12-31", us(1969, 12, 31), -1),
    ],
)
def test_ranges_cover_the_precision(value: str, low: int, high: int) -> None:
    assert parse_date_range(value) == (low, high)


@pytest.mark.parametrize(
    "value",
    ["", "24", "2024-13", "2024-02-30", "2023-02-29", "2024-3-5", "2024-03-05T25:00:00Z", "2024-03-05T10:00:00+15:00",
     "0000", "2024-03-05 10:00:00", "yesterday", "2024-03-05T10:00:00ZZ"],
)
def test_malformed_values_raise(value: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(value)


def test_sentinels_bound_all_valid_dates() -> None:
    assert DATE_MIN == parse_date_range("0001")[0]
    assert DATE_MAX == parse_date_range("9999")[1]
    assert format_instant(DATE_MIN) == "0001-01-01T00:00:00.000000Z"
    assert format_instant(DATE_MAX) == "9999-12-31T23:59:59.999999Z"


def test_instant_helpers_round_trip() -> None:
    t = to_instant_us("2024-03-05T10:00:00.123456+01:00")
    assert t == us(2024, 3, 5, 9, 0, 0, 123456)
    assert format_instant(t) == "2024-03-05T09:00:00.123456Z"
    assert to_instant_us(format_instant(t)) == t
    assert to_instant_us("2024-03-05") == us(2024, 3, 5)
