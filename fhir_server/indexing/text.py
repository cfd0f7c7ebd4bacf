"""Full-text index rows for ``_text`` and ``_content`` (R4 search.html#text) and their match rule.

Semantics (the same on SQLite and PostgreSQL): text is normalised like string search (lower case,
accents stripped, ``strings.normalize``) and split into *words*, the runs of letters and digits
(anything else separates words). ``_text=a b`` matches a resource when each query word is a word, or
the start of a word, of its narrative (``text.div`` with the XHTML tags removed and entities resolved);
``_content`` the same over every string value of the resource (narrative included). A comma separates
alternatives (OR).

At write time each resource gets up to two ``idx_text`` rows, ``("_text", content)`` and
``("_content", content)``, where ``content`` is its distinct words in document order joined by single
spaces, cut at :data:`MAX_CONTENT` characters (word order and repetitions do not matter to the match
rule, so dropping repeats keeps more of a long resource). Not indexed for ``_content``: ``id``,
``meta``, ``resourceType``, URIs (``url`` / ``system`` / ``reference`` / ``profile`` / ``fullUrl``),
base64 ``data``, date/time strings, other strings that start with ``http://`` / ``https://`` / ``urn:``,
non-string values and words over :data:`MAX_WORD` characters.

Query side: the SQL calls :data:`MATCH_FUNCTION` ``(content, words)`` with the query's words joined by
single spaces. On SQLite it is :func:`text_match` (a Python function registered on the connection);
on PostgreSQL an inlinable SQL function (migration 0004) that is
``to_tsvector('simple', content) @@ to_tsquery('simple', 'w1:* & w2:*')``, served by a GIN index on
``to_tsvector('simple', content)``. Because ``content`` holds only letter/digit runs separated by
spaces, PostgreSQL's parser splits it into the same words, and ``w:*`` is the same prefix rule.
"""

from __future__ import annotations

import html
import re
from typing import Any

from fhir_server.indexing.strings import normalize

MAX_CONTENT = 4000
"""Characters of ``idx_text.content`` per row at most (words beyond are not indexed)."""
MAX_WORD = 100
"""Longer words (hashes, base64 …) are not indexed, and a query word this long finds nothing."""
MATCH_FUNCTION = "cares_text_match"
"""The SQL function ``(content, words) -> boolean`` the search compiler calls (see the module docstring)."""

_WORD = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same on lower-case ASCII text, three times faster
_TAG = re.compile(r"<[^>]*>")
_DATE = re.compile(r"\d{4}(?:-\d\d(?:-\d\d(?:T[0-9:.]+(?:Z|[+-]\d\d:\d\d)?)?)?)?")
_SKIP = frozenset({"resourceType", "id", "meta", "url", "system", "reference", "profile", "fullUrl", "data"})
_URI_PREFIXES = ("http://", "https://", "urn:")

Row = tuple[str, str]


def narrative_text(div: str) -> str:
    """The text of an XHTML narrative: tags (and comments) become spaces, entities are resolved."""
    text = _TAG.sub(" ", div)
    return html.unescape(text) if "&" in text else text


def _collect(node: Any, out: list[str]) -> None:
    """Append the indexable string values under ``node`` (a JSON value) to ``out``: every string except
    under :data:`_SKIP` keys, dates and URIs; an XHTML ``div`` as its text. Iterative (a stack of
    iterators keeps document order) because this runs on every write."""
    skip, uri, date = _SKIP, _URI_PREFIXES, _DATE.fullmatch
    stack = [iter(node.items() if type(node) is dict else enumerate(node))]
    while stack:
        for k, v in stack[-1]:
            t = type(v)
            if t is str:
                if k in skip:
                    continue
                if v[:1].isdigit():
                    if date(v):
                        continue
                elif v.startswith(uri):
                    continue
                out.append(narrative_text(v) if k == "div" else v)
            elif t is dict:
                if k not in skip:
                    stack.append(iter(v.items()))
                    break
            elif t is list:
                if k not in skip:
                    stack.append(iter(enumerate(v)))
                    break
        else:
            stack.pop()


def words(text: str) -> list[str]:
    """The normalised words of ``text`` (letter/digit runs, lower case, no accents), repeats included."""
    s = normalize(text)
    return (_ASCII_WORD if s.isascii() else _WORD).findall(s)


def _content(text: str) -> str:
    """Distinct words of ``text`` in order, space-separated, at most :data:`MAX_CONTENT` characters."""
    uniq = dict.fromkeys(words(text))
    if not uniq:
        return ""
    joined = " ".join(uniq)
    if len(joined) <= MAX_CONTENT and max(map(len, uniq)) <= MAX_WORD:
        return joined
    out: list[str] = []
    size = -1
    for w in uniq:
        if len(w) > MAX_WORD:
            continue
        size += len(w) + 1
        if size > MAX_CONTENT:
            break
        out.append(w)
    return " ".join(out)


def text_rows(resource: dict[str, Any]) -> list[Row]:
    """The ``idx_text`` rows ``(param, content)`` of a resource: ``_text`` (when it has a narrative with
    words) and ``_content`` (when it has any indexable word). Never raises on odd content."""
    narrative = ""
    text = resource.get("text")
    if type(text) is dict and type(text.get("div")) is str:
        narrative = narrative_text(text["div"])
    strings: list[str] = []
    _collect({k: v for k, v in resource.items() if k != "text"}, strings)  # not Narrative.status
    rows: list[Row] = []
    if narrative:
        content = _content(narrative)
        if content:
            rows.append(("_text", content))
        strings.append(narrative)
    content = _content("\n".join(strings))
    if content:
        rows.append(("_content", content))
    return rows


def query_words(value: str) -> list[str]:
    """The distinct normalised words of a ``_text`` / ``_content`` search value (one alternative)."""
    return list(dict.fromkeys(words(value)))


def text_match(content: str | None, query: str | None) -> bool:
    """The match rule on SQLite: every space-separated word of ``query`` starts a word of ``content``."""
    if not content or not query:
        return False
    hay = " " + content
    return all((" " + w) in hay for w in query.split(" "))
