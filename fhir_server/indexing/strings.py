"""String normalisation for string-type search (index rows and query values alike)."""

from __future__ import annotations

import unicodedata


def normalize(s: str) -> str:
    """Lower-case ``s`` and strip accents (NFKD decomposition minus combining marks)."""
    if s.isascii():
        return s.lower()
    decomposed = unicodedata.normalize("NFKD", s)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
