"""The CARES FHIR demo data set: synthetic FHIR R4 transaction Bundles (no real people).

``bundle_paths()`` lists the JSON files in the order they must be posted to an empty server:
the shared ``00-organizations-practitioners.json`` (PUTs with fixed ids) first, then one
``child-NN-transaction.json`` per CARES child (POSTs with ``urn:uuid:`` fullUrls that reference
the shared ids literally). ``load_demo_if_empty`` is what ``cares-fhir serve --demo`` runs.
See ``README.md`` beside this file. The JSON files are the data (edit them directly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhir_server.interactions.services import Services

DEMO_DIR = Path(__file__).resolve().parent
SHARED_BUNDLE = "00-organizations-practitioners.json"


def bundle_paths() -> list[Path]:
    """The demo transaction Bundles, shared bundle first, then the children in order."""
    children = sorted(DEMO_DIR.glob("child-*-transaction.json"))
    return [DEMO_DIR / SHARED_BUNDLE, *children]


def load_bundles() -> list[tuple[str, dict[str, Any]]]:
    """``(file name, Bundle JSON)`` for every demo bundle, in load order."""
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in bundle_paths()]


async def load_demo_if_empty(svc: Services) -> int:
    """Post every demo Bundle as a transaction when the store holds no clinical data (the conformance
    resources the server stores at start do not count).

    Returns the number of Bundles loaded (0 when the database already had data). A failing
    Bundle raises ``RuntimeError`` naming the file; each Bundle is its own transaction, so the
    ones before it stay loaded.
    """
    from fhir_server.interactions import bundle
    from fhir_server.interactions.conformance import SHIPPED_TYPES
    from fhir_server.outcome import FhirError

    async with svc.db.read() as c:
        marks = ", ".join(["%s"] * len(SHIPPED_TYPES))
        if await c.one(f"SELECT 1 FROM resource WHERE rtype NOT IN ({marks}) LIMIT 1", SHIPPED_TYPES) is not None:
            return 0
    loaded = 0
    for name, doc in load_bundles():
        try:
            await bundle.process(svc, doc, minimal=True)
        except FhirError as e:
            raise RuntimeError(f"demo bundle {name} failed: {e}") from e
        loaded += 1
    return loaded
