"""Compile a :class:`ParsedSearch` into SQL that runs unchanged on SQLite (3.40+) and PostgreSQL (15+).

SQL uses ``%s`` placeholders (psycopg style); every user value is a bound parameter. No literal
``%`` appears in the SQL text, so the DB layer may substitute ``?`` for ``%s`` as is.

* Each criterion is one ``EXISTS`` on its index table (comma alternatives OR-ed inside it); criteria
  are AND-ed. ``_id`` and ``_lastUpdated`` compare columns of ``resource`` directly.
* Pages are keyset pages on ``rkey``: ``ORDER BY r.rkey`` with ``r.rkey > cursor`` and ``LIMIT count+1``.
"""

from __future__ import annotations

import time

from fhir_server.search.model import (
    Criterion,
    Include,
    ParsedSearch,
    QuantityValue,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

SqlArgs = tuple[str, list]

PAGE_COLUMNS = "r.rkey, r.id, r.version, r.last_updated, r.body"
INCLUDE_COLUMNS = "t.rkey, t.id, t.version, t.last_updated, t.body, t.rtype"
_INDEX_TABLE = {"token": "idx_token", "string": "idx_string", "reference": "idx_reference", "date": "idx_date",
                "uri": "idx_uri", "number": "idx_number", "quantity": "idx_quantity"}
_LIKE_ESCAPE = "ESCAPE '\\'"
_MAX_STRING = 255  # the width of the string columns of the index tables; the indexer cuts values to it


def _cut(value: str) -> str:
    """A query value cut like the indexer cuts stored values, so that long values still match."""
    return value[:_MAX_STRING]


def _now_us() -> int:
    return time.time_ns() // 1000


def like_escape(value: str) -> str:
    r"""Escape ``\``, ``%`` and ``_`` for a LIKE pattern with ``ESCAPE '\'``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


# -- one alternative of a criterion --------------------------------------------------------------

def _date_cond(lo: str, hi: str, v: RangeValue) -> SqlArgs:
    """Prefix semantics of a search range [ql, qh] against a row range [lo, hi] (all inclusive)."""
    ql, qh = v.low, v.high
    p = v.prefix
    if p == "eq":
        return f"({lo} >= %s AND {hi} <= %s)", [ql, qh]
    if p == "ne":
        return f"({lo} < %s OR {hi} > %s)", [ql, qh]
    if p == "gt":
        return f"{hi} > %s", [qh]
    if p == "lt":
        return f"{lo} < %s", [ql]
    if p == "ge":
        return f"{hi} >= %s", [ql]
    if p == "le":
        return f"{lo} <= %s", [qh]
    if p == "sa":
        return f"{lo} > %s", [qh]
    if p == "eb":
        return f"{hi} < %s", [ql]
    # ap: an approximation — the ranges overlap once the search range is widened on both sides by
    # 10% of the distance between now and the middle of the search range.
    delta = abs(_now_us() - (int(ql) + int(qh)) // 2) // 10
    return f"({lo} <= %s AND {hi} >= %s)", [int(qh) + delta, int(ql) - delta]


def _number_cond(col: str, v: RangeValue) -> SqlArgs:
    """Prefix semantics of a number (implicit range [low, high) around ``value``) against a point."""
    p, x = v.prefix, v.value
    if p == "eq":
        return f"({col} >= %s AND {col} < %s)", [v.low, v.high]
    if p == "ne":
        return f"({col} < %s OR {col} >= %s)", [v.low, v.high]
    if p == "gt":
        return f"{col} > %s", [x]
    if p == "lt":
        return f"{col} < %s", [x]
    if p == "ge":
        return f"{col} >= %s", [x]
    if p == "le":
        return f"{col} <= %s", [x]
    if p == "sa":
        return f"{col} >= %s", [v.high]
    if p == "eb":
        return f"{col} < %s", [v.low]
    # ap: within 10% of the value (and at least within its implicit range)
    assert x is not None
    margin = abs(x) / 10
    return f"({col} >= %s AND {col} <= %s)", [min(v.low, x - margin), max(v.high, x + margin)]


def _token_cond(v: TokenValue) -> SqlArgs:
    parts: list[str] = []
    args: list = []
    if v.no_system:
        parts.append("(i.system IS NULL OR i.system = '')")
    elif v.system is not None:
        parts.append("i.system = %s")
        args.append(_cut(v.system))
    if v.code is not None:
        parts.append("i.code = %s")
        args.append(_cut(v.code))
    return "(" + " AND ".join(parts) + ")", args


def _local_only(base_url: str) -> SqlArgs:
    """Index rows that point at this server: relative references, or absolute ones under ``base_url``
    (the indexer also fills target_type/target_id for ``http://elsewhere/fhir/Type/id``)."""
    if not base_url:
        return "", []
    return f" AND (i.url IS NULL OR i.url LIKE %s {_LIKE_ESCAPE})", [like_escape(base_url) + "/%"]


def _reference_cond(v: ReferenceValue, base_url: str) -> SqlArgs:
    if v.kind == "url":
        return "i.url = %s", [_cut(v.url or "")]
    local_sql, local_args = _local_only(base_url)
    if v.kind == "local":
        return f"(i.target_type = %s AND i.target_id = %s{local_sql})", [v.type, v.id, *local_args]
    return f"(i.target_id = %s{local_sql})", [v.id, *local_args]


def _string_cond(modifier: str | None, v: StringValue) -> SqlArgs:
    if modifier == "exact":
        return "i.exact = %s", [_cut(v.value)]
    from fhir_server.indexing.strings import normalize

    norm = like_escape(normalize(_cut(v.value)))
    pattern = f"%{norm}%" if modifier == "contains" else f"{norm}%"
    return f"i.norm LIKE %s {_LIKE_ESCAPE}", [pattern]


def _uri_cond(modifier: str | None, v: UriValue) -> SqlArgs:
    if modifier == "below":
        return f"i.uri LIKE %s {_LIKE_ESCAPE}", [like_escape(_cut(v.value)) + "%"]
    if modifier == "above":
        above = list(dict.fromkeys(_cut(u) for u in v.above))
        return f"i.uri IN ({_placeholders(len(above))})", above
    return "i.uri = %s", [_cut(v.value)]


def _quantity_cond(v: QuantityValue) -> SqlArgs:
    sql, args = _number_cond("i.value", v.number)
    parts = [sql]
    if v.system is not None:
        parts.append("i.system = %s")
        args.append(_cut(v.system))
    if v.code is not None:
        parts.append("i.code = %s")
        args.append(_cut(v.code))
    return "(" + " AND ".join(parts) + ")", args


def _alternative(c: Criterion, v: object, base_url: str) -> SqlArgs:
    if c.type == "token":
        assert isinstance(v, TokenValue)
        return _token_cond(v)
    if c.type == "reference":
        assert isinstance(v, ReferenceValue)
        return _reference_cond(v, base_url)
    if c.type == "string":
        assert isinstance(v, StringValue)
        return _string_cond(c.modifier, v)
    if c.type == "date":
        assert isinstance(v, RangeValue)
        return _date_cond("i.low", "i.high", v)
    if c.type == "uri":
        assert isinstance(v, UriValue)
        return _uri_cond(c.modifier, v)
    if c.type == "number":
        assert isinstance(v, RangeValue)
        return _number_cond("i.value", v)
    if c.type == "quantity":
        assert isinstance(v, QuantityValue)
        return _quantity_cond(v)
    raise AssertionError(f"unexpected criterion type {c.type}")


def _or(conds: list[SqlArgs]) -> SqlArgs:
    args: list = []
    for _, a in conds:
        args.extend(a)
    if len(conds) == 1:
        return conds[0][0], args
    return "(" + " OR ".join(s for s, _ in conds) + ")", args


def criterion_sql(rtype: str, c: Criterion, base_url: str = "") -> SqlArgs:
    """The SQL condition (on alias ``r`` = resource) for one criterion."""
    if c.type == "_id":
        ids = [str(v) for v in c.values]
        if len(ids) == 1:
            return "r.id = %s", ids
        return f"r.id IN ({_placeholders(len(ids))})", ids
    if c.type == "_lastUpdated":
        return _or([_date_cond("r.last_updated", "r.last_updated", v) for v in c.values])  # type: ignore[arg-type]
    cond, args = _or([_alternative(c, v, base_url) for v in c.values])
    table = _INDEX_TABLE[c.type]
    sql = (f"EXISTS (SELECT 1 FROM {table} i WHERE i.rkey = r.rkey AND i.rtype = %s AND i.param = %s"
           f" AND {cond})")
    return sql, [rtype, c.param, *args]


def _where(parsed: ParsedSearch) -> tuple[list[str], list]:
    where = ["r.rtype = %s", "NOT r.deleted"]
    args: list = [parsed.rtype]
    for c in parsed.criteria:
        sql, a = criterion_sql(parsed.rtype, c, parsed.base_url)
        where.append(sql)
        args.extend(a)
    return where, args


def compile_page(parsed: ParsedSearch) -> SqlArgs:
    """One page of matches: rows (rkey, id, version, last_updated, body), at most ``count + 1`` of them
    (a last extra row means there is a next page; do not return it)."""
    where, args = _where(parsed)
    if parsed.cursor is not None:
        where.append("r.rkey > %s")
        args.append(parsed.cursor)
    args.append(parsed.count + 1)
    return f"SELECT {PAGE_COLUMNS} FROM resource r WHERE {' AND '.join(where)} ORDER BY r.rkey LIMIT %s", args


def compile_count(parsed: ParsedSearch) -> SqlArgs:
    """``SELECT count(*)`` of all matches (ignoring the cursor and _count)."""
    where, args = _where(parsed)
    return f"SELECT count(*) FROM resource r WHERE {' AND '.join(where)}", args


def _include_sql(rtype: str, inc: Include, rkeys: list[int], base_url: str) -> SqlArgs:
    local_sql, local_args = _local_only(base_url)
    sub = (f"SELECT i.target_type, i.target_id FROM idx_reference i WHERE i.rtype = %s AND i.param = %s"
           f" AND i.rkey IN ({_placeholders(len(rkeys))}){local_sql}")
    args: list = [rtype, inc.param, *rkeys, *local_args]
    if inc.target_type is not None:
        sub += " AND i.target_type = %s"
        args.append(inc.target_type)
    sql = f"SELECT {INCLUDE_COLUMNS} FROM resource t WHERE NOT t.deleted AND (t.rtype, t.id) IN ({sub})"
    return sql, args


def _revinclude_sql(rtype: str, inc: Include, rkeys: list[int], base_url: str) -> SqlArgs:
    local_sql, local_args = _local_only(base_url)
    sub = (f"SELECT i.rkey FROM idx_reference i WHERE i.rtype = %s AND i.param = %s AND i.target_type = %s"
           f" AND i.target_id IN (SELECT m.id FROM resource m WHERE m.rkey IN ({_placeholders(len(rkeys))}))"
           f"{local_sql}")
    args: list = [inc.source_type, inc.param, rtype, *rkeys, *local_args]
    sql = f"SELECT {INCLUDE_COLUMNS} FROM resource t WHERE t.rtype = %s AND NOT t.deleted AND t.rkey IN ({sub})"
    return sql, [inc.source_type, *args]


def compile_includes(parsed: ParsedSearch, rkeys: list[int], *, limit: int | None = None) -> list[SqlArgs]:
    """One query per ``_include`` / ``_revinclude`` for the resources matched on this page (``rkeys``).

    Each yields rows (rkey, id, version, last_updated, body, rtype), ordered by rkey, without duplicates
    within one query; the caller de-duplicates across queries and against the matches themselves.
    ``limit`` (optional) caps the rows of each query (``LIMIT %s``).
    """
    rkeys = list(dict.fromkeys(int(k) for k in rkeys))
    if not rkeys:
        return []
    out: list[SqlArgs] = []
    for inc in parsed.includes:
        out.append(_include_sql(parsed.rtype, inc, rkeys, parsed.base_url))
    for inc in parsed.revincludes:
        out.append(_revinclude_sql(parsed.rtype, inc, rkeys, parsed.base_url))
    final: list[SqlArgs] = []
    for sql, args in out:
        sql += " ORDER BY t.rkey"
        if limit is not None:
            sql += " LIMIT %s"
            args = [*args, int(limit)]
        final.append((sql, args))
    return final
