"""FHIR date / dateTime / instant values as inclusive microsecond ranges (UTC, since the Unix epoch).

A value covers the whole span of its precision: ``2024`` is the year, ``2024-03`` the month,
``2024-03-05`` the day, ``2024-03-05T10:00:00Z`` that second and a value with a fractional second
is that single instant. Values without a timezone (dates, and dateTimes written without an offset)
are taken as UTC. Standalone on purpose: the search module parses query values with it too.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_US = 1_000_000
_DAY_US = 86_400 * _US

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)

_EPOCH = datetime(1970, 1, 1)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


DATE_MIN: int = _days_from_civil(1, 1, 1) * _DAY_US
"""Lowest representable value (0001-01-01T00:00:00Z); the open start of a Period."""
DATE_MAX: int = _days_from_civil(10_000, 1, 1) * _DAY_US - 1
"""Highest representable value (9999-12-31T23:59:59.999999Z); the open end of a Period."""

_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_days(y: int, m: int) -> int:
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MONTH_DAYS[m - 1]


def parse_date_range(s: str) -> tuple[int, int]:
    """The inclusive [low, high] microsecond range a FHIR date/dateTime/instant covers.

    Raises ValueError for anything that is not a well-formed value.
    """
    m = _DATE_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        raise ValueError(f"not a FHIR date/dateTime: {s!r}")
    ys, mos, ds, hs, mis, ss, fs, tz = m.groups()
    y = int(ys)
    if y == 0:
        raise ValueError(f"year 0000 is not allowed: {s!r}")
    if mos is None:
        return _days_from_civil(y, 1, 1) * _DAY_US, _days_from_civil(y + 1, 1, 1) * _DAY_US - 1
    mo = int(mos)
    if not 1 <= mo <= 12:
        raise ValueError(f"bad month: {s!r}")
    if ds is None:
        low = _days_from_civil(y, mo, 1) * _DAY_US
        return low, low + _month_days(y, mo) * _DAY_US - 1
    d = int(ds)
    if not 1 <= d <= _month_days(y, mo):
        raise ValueError(f"bad day: {s!r}")
    day = _days_from_civil(y, mo, d) * _DAY_US
    if hs is None:
        return day, day + _DAY_US - 1
    h, mi = int(hs), int(mis)
    sec = int(ss) if ss is not None else 0
    if h > 23 or mi > 59 or sec > 60:
        raise ValueError(f"bad time: {s!r}")
    if sec == 60:  # a leap second: the last instant of the minute
        sec, frac_us = 59, _US - 1
    else:
        frac_us = int((fs + "00000")[:6]) if fs is not None else 0
    offset = 0
    if tz is not None and tz != "Z":
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 14 or om > 59:
            raise ValueError(f"bad timezone offset: {s!r}")
        offset = (oh * 3600 + om * 60) * (1 if tz[0] == "+" else -1)
    low = day + (h * 3600 + mi * 60 + sec - offset) * _US + frac_us
    if fs is not None or ss == "60":
        return low, low
    if ss is None:
        return low, low + 60 * _US - 1
    return low, low + _US - 1


def to_instant_us(s: str) -> int:
    """The first microsecond of a FHIR date/dateTime/instant (exact for an instant)."""
    return parse_date_range(s)[0]


def format_instant(us: int) -> str:
    """An ISO 8601 UTC instant with microseconds, e.g. ``2024-03-05T10:00:00.123456Z``."""
    dt = _EPOCH + timedelta(microseconds=us)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
            f".{dt.microsecond:06d}Z")
