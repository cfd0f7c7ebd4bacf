"""A syntax sanity check for UCUM expressions (http://unitsofmeasure.org; the UCUM code system itself is
not carried: ``content`` = ``not-present``). It rejects what cannot be UCUM — spaces, unbalanced
brackets, empty terms — and accepts the rest without knowing whether the units exist."""

from __future__ import annotations

import re

UCUM = "http://unitsofmeasure.org"

# a simple unit symbol: printable ASCII except the structural characters, possibly with [..] parts
_ATOM = r"(?:[!#-'*+,\-0-9:-Z\\^-z|~]|\[[!-Z\\^-z|~]*\])+"
_ANNOTATION = r"\{[!-z|~]*\}"
_COMPONENT = rf"(?:{_ATOM}(?:{_ANNOTATION})?|{_ANNOTATION})"
_TERM = re.compile(rf"/?{_COMPONENT}(?:[./]{_COMPONENT})*")
_PARENS = re.compile(r"\(([^()]*)\)")


def looks_like_ucum(code: str) -> bool:
    """Whether ``code`` is syntactically a UCUM expression (``mg``, ``mm[Hg]``, ``kg/m2``, ``/min``,
    ``{score}``, ``10*3/uL``, ``mL/(24.h)``)."""
    if not code or len(code) > 200 or not code.isascii() or any(c.isspace() for c in code):
        return False
    text = code
    for _ in range(10):  # innermost parenthesised sub-terms first
        inner = _PARENS.search(text)
        if inner is None:
            break
        if not _TERM.fullmatch(inner.group(1)):
            return False
        text = text[:inner.start()] + "1" + text[inner.end():]
    return "(" not in text and ")" not in text and bool(_TERM.fullmatch(text))
