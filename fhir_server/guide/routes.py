"""GET ``/ig/`` and ``/ig/<page>``: the guide's HTML pages (not FHIR endpoints: plain HTML, 404 for unknown pages)."""

from __future__ import annotations

import asyncio
import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fhir_server import guide

router = APIRouter()


@router.get("/ig", include_in_schema=False)
async def ig_root() -> Response:
    return RedirectResponse("/ig/", status_code=307)


@router.get("/ig/{path:path}", include_in_schema=False)
async def ig_page(path: str) -> Response:
    body = await asyncio.to_thread(guide.page, path)
    if body is None:
        return HTMLResponse(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title>"
                            f"</head><body><h1>Not found</h1><p>No guide page <code>/ig/{html.escape(path)}</code>. "
                            f"See the <a href=\"/ig/\">guide index</a>.</p></body></html>", status_code=404)
    return HTMLResponse(body)
