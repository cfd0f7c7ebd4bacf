"""The CARES implementation guide as a document (issue 6, point 12): HTML pages generated from the guide's
conformance resources, the example manifests and the tests, served under ``/ig/``.

* :mod:`~fhir_server.guide.sources` loads what the pages are made from;
* :mod:`~fhir_server.guide.citations` parses Appendix M citations;
* :mod:`~fhir_server.guide.trace` builds the traceability rows and the coverage of ``requirements.json``;
* :mod:`~fhir_server.guide.render` renders the pages (jinja2, autoescaped);
* :mod:`~fhir_server.guide.routes` serves them.

The pages are generated once per process (on first request) and kept: a changed profile shows after a restart.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fhir_server.guide.render import render_site
from fhir_server.guide.sources import load

ROOT = "/ig/"

_lock = threading.Lock()
_site: dict[str, str] | None = None


def site() -> dict[str, str]:
    """The rendered pages by path relative to ``/ig/`` (``index.html``, ``StructureDefinition/<id>.html``, …)."""
    global _site
    with _lock:
        if _site is None:
            _site = render_site(load(), ROOT)
        return _site


def page(path: str) -> str | None:
    """The page at ``path`` (relative to ``/ig/``; empty = the index), or None."""
    pages = site()
    return pages.get(path or "index.html")


def write(out: Path, root: str = ROOT) -> int:
    """Write the pages as static files under ``out`` (links start with ``root``: where ``out`` will be served);
    returns the number of pages."""
    pages = render_site(load(), root)
    for rel, body in pages.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return len(pages)


__all__ = ["ROOT", "page", "render_site", "site", "write"]
