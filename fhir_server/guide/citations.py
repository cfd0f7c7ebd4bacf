"""Appendix M citations: parse ``Appendix M §VI.A.1.c.v(1)(c); §III`` into section ids, and match them to sections.

A section id is the citation without ``§``: ``VI.A.1.c.v(1)(c)``. Ranges (``§VI.B.1.c–h``, ``§VI.A.1.c.ii–iii``,
``§VI.A.1.c.vi(1)–(5)``) are expanded to their members. A cited section belongs to a requirement section when it is
that section or one of its subsections (``VI.A.1.c.v(1)(c)`` belongs to ``VI.A.1.c.v``, not the other way round).
"""

from __future__ import annotations

import re

_TOKEN = r"(?:\.[A-Za-z0-9]+|\([A-Za-z0-9]+\))"
_END = r"(?P<end>\([A-Za-z0-9]+\)|[a-z]+|[0-9]+)(?![A-Za-z0-9])"
_CITE = re.compile(rf"§\s*(?P<sec>[IVX]+{_TOKEN}*)(?:(?:\s*[–—]\s*|-){_END})?")
_LAST = re.compile(rf"(?P<head>.*?)(?P<last>{_TOKEN})$")
_ROMAN = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xv"]


def _sequence(start: str, end: str) -> list[str]:
    """The members of a range of one outline level: 1–5, b–c, ii–iii; unknown forms give both ends."""
    if start.isdigit() and end.isdigit() and int(start) <= int(end):
        return [str(n) for n in range(int(start), int(end) + 1)]
    if start in _ROMAN and end in _ROMAN and _ROMAN.index(start) <= _ROMAN.index(end):
        return _ROMAN[_ROMAN.index(start):_ROMAN.index(end) + 1]
    if len(start) == len(end) == 1 and start.isalpha() and end.isalpha() and start <= end:
        return [chr(c) for c in range(ord(start), ord(end) + 1)]
    return [start, end]


def _expand(section: str, end: str | None) -> list[str]:
    if not end:
        return [section]
    m = _LAST.match(section)
    if not m:
        return [section]
    head, last = m["head"], m["last"]
    if last.startswith("("):
        if not end.startswith("("):
            return [section]
        return [f"{head}({x})" for x in _sequence(last[1:-1], end[1:-1])]
    if end.startswith("("):
        return [section]
    return [f"{head}.{x}" for x in _sequence(last[1:], end)]


def sections(text: str) -> list[str]:
    """Every Appendix M section cited in ``text`` (in order, without duplicates)."""
    out: list[str] = []
    for m in _CITE.finditer(text or ""):
        for s in _expand(m["sec"], m["end"]):
            if s not in out:
                out.append(s)
    return out


def within(cited: str, section: str) -> bool:
    """``cited`` is ``section`` or one of its subsections."""
    return cited == section or (cited.startswith(section) and cited[len(section)] in ".(")
