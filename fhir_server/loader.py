"""``cares-fhir load``: Bundles (transaction, batch, collection, …) and NDJSON files into the store.

Transaction and batch Bundles are processed as sent. Other Bundles and NDJSON become transactions
of up to ``chunk`` resources each: ``PUT [type]/[id]`` when the resource has an id (so loading twice
is idempotent), ``POST [type]`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fhir_server.interactions import bundle
from fhir_server.interactions.services import Services
from fhir_server.outcome import FhirError


def _as_entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if rid:
        return {"resource": resource, "request": {"method": "PUT", "url": f"{rtype}/{rid}"}}
    return {"resource": resource, "request": {"method": "POST", "url": str(rtype)}}


def _chunks(resources: Iterator[dict[str, Any]], chunk: int) -> Iterator[dict[str, Any]]:
    batch: list[dict[str, Any]] = []
    for r in resources:
        batch.append(_as_entry(r))
        if len(batch) >= chunk:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": batch}
            batch = []
    if batch:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": batch}


def bundles_in(path: Path, chunk: int = 500) -> Iterator[dict[str, Any]]:
    """The transaction/batch Bundles that loading ``path`` takes."""
    data = path.read_bytes()
    if path.suffix in (".ndjson", ".jsonl"):
        lines = (orjson.loads(line) for line in data.splitlines() if line.strip())
        yield from _chunks(lines, chunk)
        return
    doc = orjson.loads(data)
    if doc.get("resourceType") == "Bundle" and doc.get("type") in ("transaction", "batch"):
        yield doc
    elif doc.get("resourceType") == "Bundle":
        yield from _chunks((e["resource"] for e in doc.get("entry", []) if "resource" in e), chunk)
    else:
        yield from _chunks(iter([doc]), chunk)


async def load_paths(svc: Services, paths: list[Path], *, progress: bool = True) -> tuple[int, list[str]]:
    """Load every file; return (entries written, error messages)."""
    from tqdm import tqdm

    todo = [(p, b) for p in paths for b in bundles_in(p)]
    done, errors = 0, []
    bar = tqdm(total=sum(len(b.get("entry", [])) for _, b in todo), unit="res", disable=not progress)
    for path, b in todo:
        try:
            result = await bundle.process(svc, b, minimal=True)
            entries = (result.resource or {}).get("entry", [])
            failed = [e for e in entries if not str(e["response"]["status"]).startswith("2")]
            errors += [f"{path.name}: {e['response'].get('outcome', {}).get('issue', [{}])[0].get('diagnostics', '')}"
                       for e in failed]
            done += len(entries) - len(failed)
        except FhirError as e:
            errors.append(f"{path.name}: {e}")
        bar.update(len(b.get("entry", [])))
    bar.close()
    if done:  # fresh planner statistics after a bulk load (PostgreSQL may run without autovacuum)
        async with svc.db.read() as c:
            # PostgreSQL: VACUUM also sets the visibility map, without which index-only scans (counts,
            # token walks) fetch every heap page; it needs autocommit, which read connections are in
            await c.run("VACUUM (ANALYZE)" if c.dialect == "postgresql" else "ANALYZE")
    return done, errors
