"""Planner statistics kept fresh by the server (PostgreSQL).

Search plans depend on table statistics. PostgreSQL's autovacuum gathers them, but it may be off (it
is on the project machines) and even when on it runs about a minute after a burst of writes. Without
statistics a fresh database written through the API gets nested-loop plans that take seconds for a
chained search over a few hundred resources (bench/RESULTS.md).

So writes mark the statistics stale, and the next search (at most every ``INTERVAL`` seconds) ANALYZEs
those of our tables that were never analyzed, grew by more than 10 % of their pages since, or changed
more rows than autovacuum's own threshold (50 + 10 % of the table). The row counters of
``pg_stat_user_tables`` reach other sessions up to a second late, so checks go on until one starts
``SETTLE`` seconds after the last write. Small tables — the only ones where a few writes matter —
analyze in milliseconds; a large table crosses 10 % rarely.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

# the tables search SQL reads (the index tables and the current-resource table)
TABLES = ("resource", "idx_token", "idx_string", "idx_reference", "idx_date", "idx_quantity", "idx_number",
          "idx_uri", "idx_text")

_STALE = ("SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
          " WHERE s.schemaname = current_schema() AND c.relname = ANY(%s) AND (c.reltuples < 0"
          " OR pg_relation_size(c.oid) > 8192 * (1.1 * c.relpages + 8)"
          " OR s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0))")


class StatisticsKeeper:
    INTERVAL = 0.5  # seconds between two checks
    SETTLE = 1.5  # the statistics counters are complete this long after a write

    def __init__(self) -> None:
        self._stale = True  # unknown at start: check once
        self._checked = 0.0
        self._last_write = 0.0
        self._lock = asyncio.Lock()

    def wrote(self) -> None:
        """A write transaction committed."""
        self._stale = True
        self._last_write = time.monotonic()

    async def before_search(self, pool: Any) -> None:
        """ANALYZE the tables that changed enough since their statistics were gathered."""
        if not self._stale or time.monotonic() - self._checked < self.INTERVAL:
            return
        async with self._lock:
            if not self._stale or time.monotonic() - self._checked < self.INTERVAL:
                return  # another search did it while this one waited
            self._checked = time.monotonic()
            self._stale = self._checked - self._last_write < self.SETTLE
            async with pool.connection() as c:
                cur = await c.execute(_STALE, (list(TABLES),))
                for (table,) in await cur.fetchall():
                    await c.execute(f'ANALYZE "{table}"')  # noqa: S608 - names come from TABLES
