"""Extraction of search-index rows from a resource (a dict as parsed by orjson), run on every write."""

from __future__ import annotations

import logging
from typing import Any

from fhir_server.indexing.registry import SearchParamRegistry
from fhir_server.indexing.text import text_rows
from fhir_server.indexing.values import Row, boolean_token

log = logging.getLogger(__name__)


def _walk(nodes: list[Any], steps: tuple[tuple[str, Any, int | None], ...]) -> list[Any]:
    """Follow ``steps`` from ``nodes``: per step take the key of each dict node, flattening lists."""
    for key, pred, index in steps:
        nxt: list[Any] = []
        for n in nodes:
            if type(n) is dict:
                v = n.get(key)
                if v is not None:
                    if type(v) is list:
                        nxt.extend(v)
                    else:
                        nxt.append(v)
        if pred is not None:
            nxt = [x for x in nxt if pred(x)]
        if index is not None:
            nxt = nxt[index:index + 1]
        if not nxt:
            return nxt
        nodes = nxt
    return nodes


def extract_index_rows(registry: SearchParamRegistry, resource: dict[str, Any]) -> dict[str, list[Row]]:
    """Index rows of ``resource`` by table key (``token``, ``string``, ``reference``, ``date``, ``uri``,
    ``number``, ``quantity``; empty tables omitted). Each row is ``(param, *columns)`` in the column order
    of the ``idx_*`` tables; rows are de-duplicated. Never raises for odd resource content."""
    rtype = resource.get("resourceType")
    plan = registry.type_plan(rtype) if type(rtype) is str else None
    if plan is None:
        return {}
    out: dict[str, list[Row]] = {}
    by_key = plan.by_key
    for key, val in resource.items():
        plans = by_key.get(key)
        if plans is None:
            continue
        first = val if type(val) is list else [val]
        for code, table, build, pred, index, rest in plans:
            try:
                vals = first
                if pred is not None:
                    vals = [x for x in vals if pred(x)]
                if index is not None:
                    vals = vals[index:index + 1]
                if rest and vals:
                    vals = _walk(vals, rest)
                if vals:
                    rows = out.get(table)
                    if rows is None:
                        rows = out[table] = []
                    for v in vals:
                        build(code, v, rows)
            except Exception:  # a bug here must not fail the write; the row is just missing
                log.exception("index extraction failed for %s.%s", rtype, code)
    for code, mode, paths in plan.computed:
        try:
            vals = [v for steps in paths for v in _walk([resource], steps)]
            value = bool(vals) if mode == "exists" else any(v is not False for v in vals)
            boolean_token(code, value, out.setdefault("token", []))
        except Exception:
            log.exception("index extraction failed for %s.%s", rtype, code)
    for table, rows in list(out.items()):
        if not rows:
            del out[table]
        elif len(rows) > 1:
            out[table] = list(dict.fromkeys(rows))
    return out


def extract_rows(registry: SearchParamRegistry, resource: dict[str, Any]) -> dict[str, list[Row]]:
    """Every index row a write stores: :func:`extract_index_rows` plus the full-text rows of ``_text`` /
    ``_content`` under the table key ``text`` (``indexing/text.py``). Never raises for odd content."""
    out = extract_index_rows(registry, resource)
    rtype = resource.get("resourceType")
    if type(rtype) is not str or registry.type_plan(rtype) is None:  # not a resource type
        return out
    try:
        text = text_rows(resource)
    except Exception:  # a bug here must not fail the write; the rows are just missing
        log.exception("full-text extraction failed for %s", rtype)
        text = []
    if text:
        out["text"] = text
    return out
