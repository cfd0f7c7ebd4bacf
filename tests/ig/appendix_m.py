"""The outline of Appendix M (MassHealth Physician Manual Appendix M, CARES Program Performance Specifications,
transmittal PHY-176, 05/19/26; the shared seeds' ``001_…txt``): every section id a citation may name.

Transcribed by hand from the document's numbering (roman parts, lettered sections, numbered items, lettered and
roman sub-items, parenthesised levels of §VI.A.1.b.ii(1) and §VI.A.1.c.v–vi), so a test can tell a citation of a
section that does not exist (``§IV.1.a`` for ``§IV.B.1.a``) from a real one.
"""

from __future__ import annotations

_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii")


def _items(prefix: str, names: str | tuple[str, ...], paren: bool = False) -> list[str]:
    return [f"{prefix}({n})" if paren else f"{prefix}.{n}" for n in names]


def _r(n: int) -> tuple[str, ...]:
    return _ROMAN[:n]


SECTIONS: frozenset[str] = frozenset([
    "I", "II", "III",
    "IV", "IV.A", "IV.A.1", "IV.A.1.a", *_items("IV.A.1.a", _r(2)), "IV.A.1.b", "IV.A.2", "IV.A.3", "IV.A.4",
    "IV.B",
    "IV.B.1", "IV.B.1.a", "IV.B.1.b", *_items("IV.B.1.b", _r(5)),
    "IV.B.2", "IV.B.2.a", *_items("IV.B.2.a", _r(2)), "IV.B.2.b", *_items("IV.B.2.b", _r(6)),
    "IV.B.3", "IV.B.3.a", *_items("IV.B.3.a", _r(3)), "IV.B.3.b", *_items("IV.B.3.b", _r(6)),
    "IV.B.4", "IV.B.4.a", *_items("IV.B.4.a", _r(5)), "IV.B.4.b", *_items("IV.B.4.b", _r(4)),
    "V", "V.A", "V.A.1", "V.A.2", "V.B", "V.B.1", "V.B.2", "V.B.3",
    "VI", "VI.A", "VI.A.1",
    "VI.A.1.a", *_items("VI.A.1.a", _r(5)),
    "VI.A.1.b", *_items("VI.A.1.b", _r(3)), "VI.A.1.b.ii(1)", *_items("VI.A.1.b.ii(1)", "abcdefgh", paren=True),
    "VI.A.1.c", *_items("VI.A.1.c", _r(6)),
    "VI.A.1.c.v(1)", *_items("VI.A.1.c.v(1)", "abc", paren=True),
    *_items("VI.A.1.c.vi", "12345", paren=True), *_items("VI.A.1.c.vi(2)", _r(7), paren=True),
    "VI.B", "VI.B.1", *_items("VI.B.1", "abcdefgh"), "VI.B.1.a.i", "VI.B.1.a.ii",
    "VI.C", *_items("VI.C", "12345"),
    "VI.D", "VI.D.1", *_items("VI.D.1", "abc"), "VI.D.2", *_items("VI.D.2", "abc"),
    "VII", *_items("VII", "ABCD"),
    "VIII",
    "IX", "IX.A", *_items("IX.A", "12345678"), "IX.B", *_items("IX.B", "12345"), "IX.C",
])
