"""The Repository: the only code that reads and writes resource rows, history rows and index rows.

It is also the one place that assigns versions (``save`` / ``delete``): version n+1 of a resource
is written while its current row is locked (``current_for_update``), so versions are gap-free and
strictly increasing on both backends.

Being the only writer of ``resource.deleted``, it also keeps the live-resource counter (``resource_count``,
``storage/schema.py``) exact: ``save`` of a new or deleted resource counts +1, ``delete`` of a live one
-1 (``Conn.count_delta``; the write connection adds them up and writes them at commit). Every create,
update, patch and delete — single, conditional, in transaction and batch bundles, by the loader — goes
through these two methods (``save_many`` is ``save`` for many fresh-id creates at once); ``replace_index``
($reindex) changes no resource row and so no count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.indexing.dates import format_instant
from fhir_server.storage.db import Conn, Database, Statement, values_statements
from fhir_server.storage.schema import INDEX_TABLES, resource_history
from fhir_server.storage.schema import resource as resource_table

IndexRows = dict[str, list[tuple]]
Indexer = Callable[[dict[str, Any]], IndexRows]


# Dropping a resource's index rows: one statement on PostgreSQL (data-modifying CTEs), one per table on SQLite.
_DELETE_INDEX_PG = ("WITH " + ", ".join(f"d{i} AS (DELETE FROM {t.name} WHERE rkey = %s)"
                                        for i, t in enumerate(INDEX_TABLES.values())) + " SELECT 1")
_DELETE_INDEX = [f"DELETE FROM {t.name} WHERE rkey = %s" for t in INDEX_TABLES.values()]


def _delete_index(conn: Conn, rkey: int) -> list[Statement]:
    if conn.dialect == "postgresql":
        return [(_DELETE_INDEX_PG, (rkey,) * len(INDEX_TABLES))]
    return [(sql, (rkey,)) for sql in _DELETE_INDEX]

_COLS = "rkey, rtype, id, version, last_updated, deleted, body"
_SQL_READ = f"SELECT {_COLS} FROM resource WHERE rtype = %s AND id = %s"
_SQL_VREAD = ("SELECT h.rkey, h.rtype, h.id, h.version, h.last_updated, h.body IS NULL, h.body "
              "FROM resource_history h JOIN resource r ON r.rkey = h.rkey "
              "WHERE r.rtype = %s AND r.id = %s AND h.version = %s")
_SQL_INSERT = ("INSERT INTO resource (rtype, id, version, last_updated, deleted, body) "
               "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (rtype, id) DO NOTHING RETURNING rkey")
_SQL_INSERT_KEYED = ("INSERT INTO resource (rkey, rtype, id, version, last_updated, deleted, body) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s)")
_SQL_UPDATE = "UPDATE resource SET version = %s, last_updated = %s, deleted = %s, body = %s WHERE rkey = %s"
_SQL_LIVE_TOTAL = "SELECT coalesce(sum(n), 0) FROM resource_count WHERE rtype = %s"
# the backfill of migration 0006 (``NOT deleted`` reads the same on PostgreSQL and SQLite)
_SQL_RECOUNT = ("INSERT INTO resource_count (rtype, slot, n) "
                "SELECT rtype, 0, count(*) FROM resource WHERE NOT deleted GROUP BY rtype")
_SQL_HISTORY = ("INSERT INTO resource_history (rkey, version, rtype, id, last_updated, method, body) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Stored:
    """One stored version of a resource (``body`` is the JSON text, None when deleted)."""

    rkey: int
    rtype: str
    id: str
    version: int
    last_updated: int
    deleted: bool
    body: str | None

    @classmethod
    def of(cls, row: tuple) -> Stored:
        return cls(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])


class IdTaken(Exception):
    """A concurrent transaction created the same type/id first; the caller retries as an update."""


class Repository:
    def __init__(self, db: Database, indexer: Indexer) -> None:
        self.db = db
        self.indexer = indexer
        self._sql_lock_current = _SQL_READ + db.for_update

    # ------------------------------------------------------------------ reads
    async def read(self, rtype: str, rid: str, conn: Conn | None = None) -> Stored | None:
        args = (rtype, rid)
        row = await (conn.one(_SQL_READ, args) if conn is not None else self.db.fetchone(_SQL_READ, args))
        return Stored.of(row) if row else None

    async def vread(self, rtype: str, rid: str, version: int) -> Stored | None:
        async with self.db.read() as c:
            row = await c.one(_SQL_VREAD, (rtype, rid, version))
        return Stored.of(row) if row else None

    # ------------------------------------------------------------------ writes (inside db.write())
    async def current_for_update(self, conn: Conn, rtype: str, rid: str) -> Stored | None:
        row = await conn.one(self._sql_lock_current, (rtype, rid))
        return Stored.of(row) if row else None

    async def save(self, conn: Conn, resource: dict[str, Any], rid: str, current: Stored | None,
                   method: str, when: int | None = None, *, fresh_id: bool = False) -> tuple[Stored, dict[str, Any]]:
        """Write ``resource`` as the next version of ``rtype/rid``; return it and the stored JSON dict.

        ``fresh_id``: the id was just made by the server (a UUID), so no other writer can hold it and the
        row can be written without first learning whether the id is taken."""
        rtype = resource["resourceType"]
        when = now_us() if when is None else when
        version = current.version + 1 if current else 1
        stored = with_server_meta(resource, rid, version, when)
        body = orjson.dumps(stored).decode()
        rows = self.indexer(stored)
        statements: list[Statement] = []
        if current is None:
            rkey = await conn.new_rkey() if fresh_id else None
            if rkey is not None:
                statements.append((_SQL_INSERT_KEYED, (rkey, rtype, rid, version, when, False, body)))
            else:
                got = await conn.one(_SQL_INSERT, (rtype, rid, version, when, False, body))
                if got is None:
                    raise IdTaken(f"{rtype}/{rid}")
                rkey = got[0]
        else:
            rkey = current.rkey
            statements.append((_SQL_UPDATE, (version, when, False, body, rkey)))
            if not current.deleted:
                statements += _delete_index(conn, rkey)
        statements.append((_SQL_HISTORY, (rkey, version, rtype, rid, when, method, body)))
        for kind, kind_rows in rows.items():
            if kind_rows:
                # at most max_params per statement: on PostgreSQL (> 8 token rows) psycopg then caches the conversion
                statements += values_statements(INDEX_TABLES[kind], [(rkey, rtype, *r) for r in kind_rows],
                                                conn.max_params)
        await conn.batch(statements)
        if current is None or current.deleted:  # created, or re-created after a delete
            conn.count_delta(rtype, 1)
        return Stored(rkey, rtype, rid, version, when, False, body), stored

    async def save_many(self, conn: Conn, items: Sequence[tuple[dict[str, Any], str]], method: str = "POST",
                        when: int | None = None) -> list[tuple[Stored, dict[str, Any]]]:
        """Create each ``(resource, rid)`` — ids just made by the server — exactly as
        ``save(conn, resource, rid, None, method, when, fresh_id=True)`` one after the other would (same rows:
        version 1, ``meta.lastUpdated`` of its own ``now_us()`` unless ``when`` is given, history, index rows, live
        counts), but with one multi-row insert per table for all of them (``Conn.insert_many``): the audit
        trail's background writer stores its batches this way. Returns what each ``save`` would, in order."""
        if not items:
            return []
        rkeys = await conn.new_rkeys(len(items))
        if rkeys is None:  # not a write transaction of a backend that knows its keys in advance
            return [await self.save(conn, r, rid, None, method, when, fresh_id=True) for r, rid in items]
        current_rows: list[tuple] = []
        history_rows: list[tuple] = []
        index_rows: dict[str, list[tuple]] = {}
        out: list[tuple[Stored, dict[str, Any]]] = []
        for (resource, rid), rkey in zip(items, rkeys, strict=True):
            rtype = resource["resourceType"]
            at = now_us() if when is None else when
            stored = with_server_meta(resource, rid, 1, at)
            body = orjson.dumps(stored).decode()
            for kind, kind_rows in self.indexer(stored).items():
                if kind_rows:
                    index_rows.setdefault(kind, []).extend((rkey, rtype, *r) for r in kind_rows)
            current_rows.append((rkey, rtype, rid, 1, at, False, body))
            history_rows.append((rkey, 1, rtype, rid, at, method, body))
            out.append((Stored(rkey, rtype, rid, 1, at, False, body), stored))
        await conn.insert_many(resource_table, current_rows)
        await conn.insert_many(resource_history, history_rows)
        for kind, rows in index_rows.items():
            await conn.insert_many(INDEX_TABLES[kind], rows)
        for stored_row, _ in out:
            conn.count_delta(stored_row.rtype, 1)
        return out

    async def delete(self, conn: Conn, current: Stored, when: int | None = None) -> Stored:
        """Mark ``current`` deleted as a new version (its index rows go; history keeps a tombstone)."""
        when = now_us() if when is None else when
        version = current.version + 1
        statements: list[Statement] = [
            (_SQL_UPDATE, (version, when, True, None, current.rkey)),
            (_SQL_HISTORY, (current.rkey, version, current.rtype, current.id, when, "DELETE", None))]
        statements += _delete_index(conn, current.rkey)
        await conn.batch(statements)
        if not current.deleted:
            conn.count_delta(current.rtype, -1)
        return Stored(current.rkey, current.rtype, current.id, version, when, True, None)

    # ------------------------------------------------------------------ history
    async def history(self, *, rtype: str | None, rid: str | None, since: int | None, at: tuple[int, int] | None,
                      count: int, cursor: tuple[int, int, int] | None) -> list[tuple[Stored, str]]:
        """Versions newest first as (Stored, method); keyset-paged on (last_updated, rkey, version)."""
        where, args = [], []
        if rtype is not None and rid is not None:
            where.append("h.rkey = (SELECT rkey FROM resource WHERE rtype = %s AND id = %s)")
            args += [rtype, rid]
        elif rtype is not None:
            where.append("h.rtype = %s")
            args.append(rtype)
        if since is not None:
            where.append("h.last_updated >= %s")
            args.append(since)
        if at is not None:
            # the version was current at some point of [low, high]
            where.append("h.last_updated <= %s AND NOT EXISTS (SELECT 1 FROM resource_history n WHERE "
                         "n.rkey = h.rkey AND n.version > h.version AND n.last_updated <= %s)")
            args += [at[1], at[0]]
        if cursor is not None:
            where.append("(h.last_updated < %s OR (h.last_updated = %s AND (h.rkey > %s OR "
                         "(h.rkey = %s AND h.version < %s))))")
            args += [cursor[0], cursor[0], cursor[1], cursor[1], cursor[2]]
        sql = ("SELECT h.rkey, h.rtype, h.id, h.version, h.last_updated, h.body IS NULL, h.body, h.method "
               "FROM resource_history h" + (" WHERE " + " AND ".join(where) if where else "") +
               " ORDER BY h.last_updated DESC, h.rkey ASC, h.version DESC LIMIT %s")
        args.append(count)
        async with self.db.read() as c:
            rows = await c.all(sql, args)
        return [(Stored.of(r), r[7]) for r in rows]

    async def exists(self, rtype: str, rid: str) -> bool:
        async with self.db.read() as c:
            return await c.one("SELECT 1 FROM resource WHERE rtype = %s AND id = %s", (rtype, rid)) is not None

    # ------------------------------------------------------------------ reindexing ($reindex)
    async def count_current(self, conn: Conn, rtype: str | None) -> int:
        """How many current (not deleted) resources there are, of ``rtype`` or of every type."""
        sql = "SELECT count(*) FROM resource WHERE deleted = %s" + (" AND rtype = %s" if rtype else "")
        row = await conn.one(sql, (False, rtype) if rtype else (False,))
        return int(row[0]) if row else 0

    async def live_total(self, conn: Conn, rtype: str) -> int:
        """How many live ``rtype`` resources there are, from ``resource_count`` (a few primary-key rows),
        as a count over ``resource`` would see them on ``conn`` — including the pending changes of
        ``conn``'s own transaction, which reach the counter only at commit."""
        row = await conn.one(_SQL_LIVE_TOTAL, (rtype,))
        return int(row[0] if row else 0) + conn.pending_count(rtype)

    async def recount(self) -> dict[str, int]:
        """Rebuild ``resource_count`` from the ``resource`` rows (``cares-fhir db recount``): after rows were
        written by a server of a version before migration 0006, or by hand. Exact while servers write:
        on PostgreSQL the counter table is locked first (EXCLUSIVE: readers go on), so a writer that has
        not yet added its delta waits for the recount — its rows are uncommitted until then and not in
        the recount's count — and one that has is committed and counted. Returns the new counts."""
        async with self.db.write() as c:
            if c.dialect == "postgresql":
                await c.run("LOCK TABLE resource_count IN EXCLUSIVE MODE")
            await c.run("DELETE FROM resource_count")
            await c.run(_SQL_RECOUNT)
            rows = await c.all("SELECT rtype, n FROM resource_count ORDER BY rtype")
        return {r[0]: int(r[1]) for r in rows}

    async def current_batch(self, conn: Conn, rtype: str | None, after: int, limit: int, *,
                            lock: bool = False) -> list[tuple[int, str, str]]:
        """``(rkey, rtype, body)`` of up to ``limit`` current resources (of ``rtype``, or all) with
        ``rkey > after``, by rkey. ``lock``: lock them until the end of the write transaction."""
        sql = ("SELECT rkey, rtype, body FROM resource WHERE deleted = %s AND rkey > %s"
               + (" AND rtype = %s" if rtype else "") + " ORDER BY rkey LIMIT %s"
               + (self.db.for_update if lock else ""))
        args = (False, after, rtype, limit) if rtype else (False, after, limit)
        return [(r[0], r[1], r[2]) for r in await conn.all(sql, args)]

    async def replace_index(self, conn: Conn, items: list[tuple[int, str, IndexRows]]) -> None:
        """Replace the index rows of each ``(rkey, rtype, rows)`` (inside a write transaction)."""
        if not items:
            return
        # psycopg binds statements of at most 50 parameters from a cache (bigger ones cost ~10x more to bind)
        limit = 50 if conn.dialect == "postgresql" else 999
        keys = [rkey for rkey, _, _ in items]
        statements: list[Statement] = []
        for i in range(0, len(keys), limit):
            chunk = keys[i:i + limit]
            marks = ", ".join(["%s"] * len(chunk))
            statements += [(f"DELETE FROM {t.name} WHERE rkey IN ({marks})", chunk) for t in INDEX_TABLES.values()]
        by_kind: dict[str, list[tuple]] = {}
        for rkey, rtype, rows in items:
            for kind, kind_rows in rows.items():
                by_kind.setdefault(kind, []).extend((rkey, rtype, *r) for r in kind_rows)
        for kind, all_rows in by_kind.items():
            statements += values_statements(INDEX_TABLES[kind], all_rows, limit)
        await conn.batch(statements)


def with_server_meta(resource: dict[str, Any], rid: str, version: int, when: int) -> dict[str, Any]:
    """The resource with ``id`` and server-owned ``meta.versionId``/``meta.lastUpdated`` set, keeping
    the client's other meta (profile, tag, security, source) and its element order."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    meta["versionId"] = str(version)
    meta["lastUpdated"] = format_instant(when)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": rid, "meta": meta}
    for k, v in resource.items():
        if k not in out:
            out[k] = v
    return out
