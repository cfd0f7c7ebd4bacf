"""Database connections for SQLite (embedded default) and PostgreSQL (production).

Hot paths run hand-written SQL (``%s`` placeholders) straight on the DBAPI drivers — psycopg 3's
async pool and the stdlib ``sqlite3`` — because SQLAlchemy's async engine costs ~0.8 ms per
connection checkout (measured: 17 % of a bare stack's read rate vs 55 % for psycopg_pool).
SQLAlchemy describes the schema (``schema.py``) and drives Alembic migrations (``migrate.py``).

Everything above this module uses the same ``Conn`` API on both backends:
``one`` / ``all`` / ``run`` / ``batch`` / ``insert_many`` and ``lock`` (a transaction-scoped advisory
lock on PostgreSQL; a no-op on SQLite where a write transaction already excludes all others),
and in write transactions ``count_delta`` (the per-type live-resource counter, ``resource_count``).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Boolean, Float, Integer, Table
from sqlalchemy.engine import make_url

from fhir_server.storage.statistics import StatisticsKeeper

Statement = tuple[str, Sequence[Any]]

PG_MAX_PARAMS = 50
"""psycopg converts a query's ``%s`` placeholders from a cache only for statements of at most 50 parameters;
a bigger one is parsed again on every execution (~10x the cost of binding it)."""

COUNT_SLOTS = 16
"""Rows per type in ``resource_count`` that concurrent write transactions spread their deltas over."""

_COUNT_UPSERT = ("INSERT INTO resource_count (rtype, slot, n) VALUES {values} "
                 "ON CONFLICT (rtype, slot) DO UPDATE SET n = resource_count.n + excluded.n")


class Conn(ABC):
    """One connection, possibly inside a transaction."""

    dialect: str

    @abstractmethod
    async def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None: ...

    @abstractmethod
    async def all(self, sql: str, args: Sequence[Any] = (), *, prepare: bool = False) -> list[tuple]:
        """All rows. ``prepare``: the query may run as a server-side prepared statement (its generic
        plan is fine whatever the values); otherwise it is planned for its values every time."""

    @abstractmethod
    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute, return the affected row count."""

    @abstractmethod
    async def batch(self, statements: Sequence[Statement]) -> None:
        """Run (sql, args) statements in order; their results are not read (inside ``write()`` they may
        be sent later, together with COMMIT or the next statement whose rows are read)."""

    @abstractmethod
    async def lock(self, key: str) -> None:
        """Take a lock named ``key`` until the end of the current transaction."""

    #: the most parameters one statement of ``insert_many``'s fallback (multi-row VALUES) takes
    max_params: int = 999

    async def new_rkey(self) -> int | None:
        """A fresh ``resource.rkey`` when the backend can hand one out without a round trip, else None
        (the caller then lets the INSERT assign it)."""
        return None

    async def new_rkeys(self, n: int) -> list[int] | None:
        """``n`` fresh ``resource.rkey`` values, increasing — the keys ``n`` INSERTs that let the database assign
        them would get — or None when the backend cannot tell them in advance (only write transactions can)."""
        return None

    async def insert_many(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """Insert complete ``rows`` (values in ``table``'s column order) into ``table``; like ``batch``, nothing
        is read back. Here: multi-row VALUES of at most ``max_params`` parameters each (a full chunk's SQL is
        the same every time); the backends do better (SQLite ``executemany``, PostgreSQL one JSON parameter)."""
        if rows:
            await self.batch(values_statements(table, rows, self.max_params))

    def on_rollback(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Await ``fn`` if this transaction rolls back (after the connection is released): undoes what a
        write did in memory — a SearchParameter or profile registered before a later entry failed."""
        self.__dict__.setdefault("_rollback_hooks", []).append(fn)

    async def rolled_back(self) -> None:
        for fn in self.__dict__.pop("_rollback_hooks", []):
            await fn()

    def count_delta(self, rtype: str, delta: int) -> None:
        """Add ``delta`` to the number of live ``rtype`` resources (``resource_count``) when this write
        transaction commits. Only write connections (``Database.write()``) take deltas: a write on any
        other connection is a bug, and would make the counter drift."""
        raise RuntimeError("count_delta outside a write transaction")

    def pending_count(self, rtype: str) -> int:
        """The delta of ``rtype`` this transaction will add at commit (0 outside write transactions):
        a search inside a transaction sees the transaction's own rows, so its counter total must too."""
        return 0


_VALUES_SQL: dict[tuple[str, int], str] = {}


def values_statements(table: Table, rows: Sequence[Sequence[Any]], max_params: int) -> list[Statement]:
    """INSERTs of ``rows`` into ``table``, several rows per statement but at most ``max_params`` parameters each."""
    width = len(table.columns)
    per = max(1, max_params // width)
    out: list[Statement] = []
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        sql = _VALUES_SQL.get((table.name, len(chunk)))
        if sql is None:
            one = "(" + ", ".join(["%s"] * width) + ")"
            sql = _VALUES_SQL[(table.name, len(chunk))] = (
                f"INSERT INTO {table.name} ({', '.join(c.name for c in table.columns)}) VALUES "
                + ", ".join([one] * len(chunk)))
        out.append((sql, [v for r in chunk for v in r]))
    return out


class _CountDeltas:
    """The counter deltas of one write transaction, summed per type in memory and written at commit as
    ONE upsert (:meth:`_count_statement`) instead of an UPDATE per resource.

    * At commit, not before: the counter row is locked only from the upsert to the end of COMMIT (on
      PostgreSQL both execute in the same multi-statement query), not while the transaction runs; a
      rollback simply drops the deltas.
    * Types sorted by name: concurrent transactions lock counter rows in the same order, and by then
      they hold or wait for no other lock, so the upserts cannot deadlock.
    * All of a transaction's deltas go to one slot (``slot``), chosen per connection: two concurrent
      creates of one type normally touch different rows and do not wait for each other's COMMIT.
    * Zero deltas (a type created and deleted in one transaction) are left out.
    """

    _deltas: dict[str, int] | None = None

    def count_delta(self, rtype: str, delta: int) -> None:
        if self._deltas is None:
            self._deltas = {}
        self._deltas[rtype] = self._deltas.get(rtype, 0) + delta

    def pending_count(self, rtype: str) -> int:
        return self._deltas.get(rtype, 0) if self._deltas else 0

    def _count_statement(self, slot: int) -> Statement | None:
        """The upsert of the deltas into ``slot`` (None when there is nothing to add); forgets them."""
        items = sorted((t, d) for t, d in (self._deltas or {}).items() if d)
        self._deltas = None
        if not items:
            return None
        sql = _COUNT_UPSERT.format(values=", ".join(["(%s, %s, %s)"] * len(items)))
        return sql, [v for t, d in items for v in (t, slot, d)]


class Database(ABC):
    dialect: str
    #: appended to a SELECT that reads a row the transaction will change
    for_update: str = ""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def read(self) -> Any:
        """``async with db.read() as conn``: a connection in autocommit mode."""

    @abstractmethod
    def write(self) -> Any:
        """``async with db.write() as conn``: one transaction, committed on success, rolled back on error."""

    @abstractmethod
    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        """One row of a single autocommit query (the read-by-id hot path)."""

    async def before_search(self) -> None:
        """Called before a search runs: a chance to refresh planner statistics (``statistics.py``)."""
        return None


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy wants it (``postgresql+psycopg://`` for PostgreSQL)."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def create_database(url: str, *, pool_size: int = 8) -> Database:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return SqliteDatabase(u.database or ":memory:")
    if backend == "postgresql":
        return PostgresDatabase(u.set(drivername="postgresql").render_as_string(hide_password=False),
                                pool_size=pool_size)
    raise ValueError(f"unsupported database URL scheme {u.drivername!r} (use sqlite:/// or postgresql+psycopg://)")


# --------------------------------------------------------------------------------------------- PostgreSQL
class _RkeyBlocks:
    """Resource keys drawn from the ``resource_rkey_seq`` sequence a block at a time, so that a create
    needs no round trip to learn its key (sequences are non-transactional: blocks never overlap)."""

    BLOCK = 64

    def __init__(self) -> None:
        self._free: list[int] = []

    async def take(self, conn: Any) -> int:
        if not self._free:
            cur = await conn.execute("SELECT nextval('resource_rkey_seq') FROM generate_series(1, %s)",
                                     (self.BLOCK,))
            self._free = sorted((r[0] for r in await cur.fetchall()), reverse=True)
        return self._free.pop()

    async def take_many(self, conn: Any, n: int) -> list[int]:
        """``n`` keys, smallest first (what ``n`` calls of ``take`` would return), in at most one round trip."""
        if len(self._free) < n:
            more = max(self.BLOCK, n - len(self._free))
            cur = await conn.execute("SELECT nextval('resource_rkey_seq') FROM generate_series(1, %s)", (more,))
            self._free = sorted(self._free + [r[0] for r in await cur.fetchall()], reverse=True)
        taken = self._free[-n:] if n else []
        del self._free[len(self._free) - n:]
        return taken[::-1]


def _pg_type(column: Any) -> tuple[str, tuple[type, ...]]:
    """The PostgreSQL type ``json_to_recordset`` reads a column's values as, and the Python types (one of them per
    column and batch) that ``insert_many`` sends that way — values JSON carries exactly (orjson writes a float's
    shortest round-trip form, PostgreSQL reads it back to the same double)."""
    t = column.type
    if isinstance(t, Boolean):
        return "bool", (bool,)
    if isinstance(t, Integer):  # BigInteger and SmallInteger too
        return "int8", (int,)
    if isinstance(t, Float):
        return "float8", (float, int)
    return "text", (str,)


_RECORDSET_SQL: dict[str, tuple[str, list[tuple[str, tuple[type, ...]]]]] = {}


def _recordset_insert(table: Table) -> tuple[str, list[tuple[str, tuple[type, ...]]]]:
    """``INSERT INTO t (…) SELECT … FROM json_to_recordset(%s) AS r(c1 type, …)`` of ``table``: ONE parameter."""
    got = _RECORDSET_SQL.get(table.name)
    if got is None:
        types = [_pg_type(c) for c in table.columns]
        names = [c.name for c in table.columns]
        record = ", ".join(f"{n} {t}" for n, (t, _) in zip(names, types, strict=True))
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(f'r.{n}' for n in names)} "
               f"FROM json_to_recordset(%s::json) AS r({record})")
        got = _RECORDSET_SQL[table.name] = (sql, types)
    return got


def _pg_records(table: Table, rows: Sequence[Sequence[Any]]) -> str | None:
    """``rows`` as the JSON array of objects ``json_to_recordset`` reads — or None when a column mixes Python types
    or holds one that the JSON route would not store as the single-row INSERT does (then: multi-row VALUES)."""
    _, types = _recordset_insert(table)
    for values, (_, accepted) in zip(zip(*rows, strict=True), types, strict=True):
        seen = {type(v) for v in values if v is not None}
        if len(seen) > 1 or (seen and next(iter(seen)) not in accepted):
            return None
        if float in seen and not all(math.isfinite(v) for v in values if v is not None):
            return None  # orjson would write NaN and infinities as null
    names = [str(c.name) for c in table.columns]  # plain str: orjson refuses SQLAlchemy's quoted_name keys
    try:
        return orjson.dumps([dict(zip(names, r, strict=True)) for r in rows]).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
        return None


class _PgConn(Conn):
    dialect = "postgresql"
    max_params = PG_MAX_PARAMS

    def __init__(self, conn: Any, rkeys: _RkeyBlocks | None = None) -> None:
        self._c = conn
        self._rkeys = rkeys

    async def new_rkey(self) -> int | None:
        return await self._rkeys.take(self._c) if self._rkeys is not None else None

    async def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        cur = await self._c.execute(sql, args)
        return await cur.fetchone()

    async def all(self, sql: str, args: Sequence[Any] = (), *, prepare: bool = False) -> list[tuple]:
        # a search's best plan usually depends on its values: the generic plan of a prepared
        # statement turned Task?status=requested from 1 ms into 50 ms (bench/RESULTS.md)
        cur = await self._c.execute(sql, args, prepare=None if prepare else False)
        return await cur.fetchall()

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = await self._c.execute(sql, args)
        return cur.rowcount

    async def batch(self, statements: Sequence[Statement]) -> None:
        async with self._c.cursor() as cur:
            for sql, args in statements:
                await cur.execute(sql, args)

    async def lock(self, key: str) -> None:
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        await self.one("SELECT pg_advisory_xact_lock(%s)", (h,))


class _PgWriteConn(_CountDeltas, _PgConn):
    """A write transaction in as few round trips as possible.

    Statements whose results nobody reads (``batch``) wait in ``pending``; they go out — bound
    client-side by psycopg (libpq literal escaping) — in one simple query together with the next
    statement that returns rows, or with COMMIT. ``BEGIN`` rides along with the first statement sent.
    A transaction of writes only is one round trip (one multi-statement query is atomic in PostgreSQL).
    The ``resource_count`` upsert goes out with COMMIT too: counting costs no round trip. Its slot is the
    server process id of the connection modulo :data:`COUNT_SLOTS` (known locally, no query): a pool's
    connections are started one after the other and mostly have consecutive pids, so up to 16 concurrent
    writers of one server usually update 16 different rows.
    """

    def __init__(self, conn: Any, rkeys: _RkeyBlocks) -> None:
        from psycopg import AsyncClientCursor

        super().__init__(conn, rkeys)
        self._cur = AsyncClientCursor(conn)
        self._pending: list[str] = []
        self._begun = False

    async def _send(self, sql: str | None, args: Sequence[Any] = ()) -> Any:
        parts = [] if self._begun else ["BEGIN"]
        parts += self._pending
        if sql is not None:
            parts.append(self._cur.mogrify(sql, args))
        self._pending = []
        self._begun = True
        await self._cur.execute(";\n".join(parts))
        while self._cur.nextset():
            pass
        return self._cur

    async def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        return await (await self._send(sql, args)).fetchone()

    async def all(self, sql: str, args: Sequence[Any] = (), *, prepare: bool = False) -> list[tuple]:
        return await (await self._send(sql, args)).fetchall()

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return (await self._send(sql, args)).rowcount

    async def batch(self, statements: Sequence[Statement]) -> None:
        self._pending += [self._cur.mogrify(sql, args) for sql, args in statements]

    async def new_rkeys(self, n: int) -> list[int] | None:
        return await self._rkeys.take_many(self._c, n) if self._rkeys is not None else None

    async def insert_many(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """All ``rows`` in one ``INSERT … SELECT … FROM json_to_recordset(%s)``: one parameter (psycopg's cached
        conversion applies; JSON is written by orjson and read by PostgreSQL, both in C — psycopg's own array
        literals escape text element by element in Python, several times slower for resource bodies)."""
        if not rows:
            return
        records = _pg_records(table, rows)
        if records is None:
            await super().insert_many(table, rows)
            return
        self._pending.append(self._cur.mogrify(_recordset_insert(table)[0], (records,)))

    async def commit(self) -> None:
        counted = self._count_statement(self._c.info.backend_pid % COUNT_SLOTS)
        if counted is not None:
            self._pending.append(self._cur.mogrify(*counted))
        if self._begun:
            self._pending.append("COMMIT")
            await self._cur.execute(";\n".join(self._pending))
        elif self._pending:  # never begun: one implicit transaction
            await self._cur.execute(";\n".join(self._pending))
        self._pending = []
        await self._cur.close()

    async def rollback(self) -> None:
        self._pending = []
        self._deltas = None
        if self._begun or self._c.info.transaction_status != 0:  # not IDLE
            try:
                await self._c.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the pool discards a broken connection
                pass
        await self._cur.close()


class PostgresDatabase(Database):
    dialect = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, conninfo: str, *, pool_size: int = 8) -> None:
        self.conninfo = conninfo
        self.pool_size = pool_size
        self._pool: Any = None
        self._rkeys = _RkeyBlocks()
        self._statistics = StatisticsKeeper()

    async def before_search(self) -> None:
        await self._statistics.before_search(self._pool)

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(self.conninfo, min_size=self.pool_size, max_size=self.pool_size,
                                         open=False, kwargs={"autocommit": True, "prepare_threshold": 2})
        await self._pool.open(wait=True)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self._pool.connection() as c:
            yield _PgConn(c)

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        async with self._pool.connection() as c:
            cur = await c.execute(sql, args)
            return await cur.fetchone()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        failed: Conn | None = None
        try:
            async with self._pool.connection() as c:
                conn = _PgWriteConn(c, self._rkeys)
                try:
                    yield conn
                except BaseException:
                    await conn.rollback()
                    failed = conn
                    raise
                try:
                    await conn.commit()
                except BaseException:
                    failed = conn
                    raise
                self._statistics.wrote()
        finally:
            if failed is not None:
                await failed.rolled_back()


# --------------------------------------------------------------------------------------------- SQLite
_SQL_CACHE: dict[str, str] = {}


def _q(sql: str) -> str:
    """psycopg-style SQL → sqlite3 style (``%s`` → ``?``, ``%%`` → ``%``), cached."""
    out = _SQL_CACHE.get(sql)
    if out is None:
        out = _SQL_CACHE[sql] = sql.replace("%s", "?").replace("%%", "%")
    return out


def register_sqlite_functions(c: sqlite3.Connection) -> None:
    """The SQL functions search SQL calls that SQLite lacks (PostgreSQL has them from the migrations):
    ``cares_text_match(content, words)`` of ``_text`` / ``_content`` (``indexing/text.py``)."""
    from fhir_server.indexing.text import MATCH_FUNCTION, text_match

    c.create_function(MATCH_FUNCTION, 2, text_match, deterministic=True)


class _SqliteConn(Conn):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    async def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        return self._c.execute(_q(sql), args).fetchone()

    async def all(self, sql: str, args: Sequence[Any] = (), *, prepare: bool = False) -> list[tuple]:
        return self._c.execute(_q(sql), args).fetchall()

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._c.execute(_q(sql), args).rowcount

    async def batch(self, statements: Sequence[Statement]) -> None:
        for sql, args in statements:
            self._c.execute(_q(sql), args)

    async def insert_many(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cols = [c.name for c in table.columns]
            self._c.executemany(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                rows)

    async def lock(self, key: str) -> None:
        return None  # BEGIN IMMEDIATE already serialises writers


class _SqliteWriteConn(_CountDeltas, _SqliteConn):
    """The connection inside ``SqliteDatabase.write()``; its counter deltas always go to slot 0 (SQLite
    has one writer at a time, so there is nothing to spread)."""

    async def new_rkeys(self, n: int) -> list[int] | None:
        # an INTEGER PRIMARY KEY without AUTOINCREMENT: an INSERT that leaves it out gets max(rkey) + 1, and this
        # transaction (BEGIN IMMEDIATE) is the only writer until it ends
        top = (self._c.execute("SELECT max(rkey) FROM resource").fetchone() or (None,))[0] or 0
        return list(range(top + 1, top + 1 + n))

    def flush_counts(self) -> None:
        counted = self._count_statement(0)
        if counted is not None:
            self._c.execute(_q(counted[0]), counted[1])


class SqliteDatabase(Database):
    """One connection guarded by an asyncio lock: SQLite has one writer at a time anyway, and its
    calls take microseconds, so they run on the event loop without a thread hop."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA busy_timeout=10000")
        register_sqlite_functions(c)
        self._conn = c

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield _SqliteConn(self._conn)

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        async with self._lock:
            return self._conn.execute(_q(sql), args).fetchone()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        failed: Conn | None = None
        try:
            async with self._lock:
                c = self._conn
                c.execute("BEGIN IMMEDIATE")
                conn = _SqliteWriteConn(c)
                try:
                    yield conn
                    conn.flush_counts()
                except BaseException:
                    c.execute("ROLLBACK")
                    failed = conn
                    raise
                c.execute("COMMIT")
        finally:
            if failed is not None:  # outside the lock: the hooks read the database
                await failed.rolled_back()
