"""HTML pages of the authorization server (login, authorization, patient picker, errors): small
``string.Template`` files in ``templates/``; every value is HTML-escaped here."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from string import Template

from fastapi.responses import HTMLResponse

__all__ = ["esc", "page"]

_DIR = Path(__file__).parent / "templates"
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'"}


@cache
def _template(name: str) -> Template:
    return Template((_DIR / f"{name}.html").read_text(encoding="utf-8"))


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(name: str, title: str, status: int = 200, **values: str) -> HTMLResponse:
    """Render ``templates/<name>.html`` into the base page; ``values`` must already be escaped HTML."""
    body = _template(name).safe_substitute(values)
    text = _template("base").safe_substitute(title=esc(title), body=body)
    return HTMLResponse(text, status_code=status, headers=dict(_HEADERS))
