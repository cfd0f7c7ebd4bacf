"""``$reindex``: re-extract the search index rows of every current resource (of one type or all),
e.g. after a custom SearchParameter was added (HAPI FHIR has the same operation).

``POST /fhir/$reindex`` · ``POST /fhir/[type]/$reindex`` · ``cares-fhir reindex [--type T]``.

Resources are visited by ``rkey`` in batches, each its own short transaction that locks the batch's
rows (a concurrent update waits for the batch, never has its fresh index rows overwritten), so a
large store is never held in one huge transaction and other requests go on between batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from fhir_server.interactions import guard
from fhir_server.interactions.checks import known_type
from fhir_server.interactions.request import Interaction, Result
from fhir_server.interactions.services import Services
from fhir_server.outcome import Issue, operation_outcome

#: resources per transaction
BATCH = 500


async def count(svc: Services, rtype: str | None = None) -> int:
    """How many resources ``reindex`` would visit."""
    async with svc.db.read() as c:
        return await svc.repo.count_current(c, rtype)


async def reindex(svc: Services, rtype: str | None = None, *, batch: int = BATCH,
                  progress: Callable[[int], None] | None = None) -> int:
    """Replace the index rows of every current resource of ``rtype`` (every type when None) with
    those the registry extracts now; ``progress(n)`` after each batch. Returns how many."""
    done, after = 0, 0
    while True:
        async with svc.db.write() as c:
            rows = await svc.repo.current_batch(c, rtype, after, batch, lock=True)
            if rows:
                await svc.repo.replace_index(c, [(rkey, rt, svc.repo.indexer(orjson.loads(body)))
                                                 for rkey, rt, body in rows])
        if not rows:
            return done
        after = rows[-1][0]
        done += len(rows)
        if progress is not None:
            progress(len(rows))
        await asyncio.sleep(0)  # let other requests in between batches


async def operation(svc: Services, ix: Interaction) -> Result:
    """``POST [base]/$reindex`` (``ix.rtype`` None) or ``POST [base]/[type]/$reindex``."""
    rtype = known_type(ix.rtype) if ix.rtype is not None else None
    pol = await guard.policy_for(svc)
    if pol is not None:
        await pol.require_admin("$reindex")
    n = await reindex(svc, rtype)
    await guard.audit(svc, "E", "operation-reindex", rtype=rtype)
    what = f"{rtype} resource(s)" if rtype else "resource(s)"
    return Result(200, resource=operation_outcome([Issue("information", "informational", f"Reindexed {n} {what}")]))
