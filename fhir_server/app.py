"""Builds the ASGI application.

Requests under ``/fhir`` go straight to the FHIR endpoint (``api.fhir_app.FhirApp``, plain ASGI:
it is the hot path); everything else (``/``, ``/healthz``, and later the SMART authorization pages
and the app) is a FastAPI application, which also owns startup and shutdown (lifespan).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from fhir_server import __version__, audit
from fhir_server.api.fhir_app import FhirApp
from fhir_server.auth import keys
from fhir_server.auth.routes import build_router as auth_router
from fhir_server.config import Settings
from fhir_server.guide.routes import router as guide_router
from fhir_server.interactions import conformance
from fhir_server.interactions.search_parameters import load_stored as load_search_parameters
from fhir_server.interactions.services import Services
from fhir_server.storage import migrate

log = logging.getLogger("cares_fhir")


def create_app(settings: Settings) -> Any:
    svc = Services.create(settings)
    fhir = FhirApp(svc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        await svc.db.open()
        await load_search_parameters(svc)  # stored custom SearchParameters, before any write is indexed
        await conformance.load_shipped(svc)  # the CARES guide's profiles / value sets, stored when changed
        await conformance.load_stored(svc)  # every stored StructureDefinition / ValueSet / CodeSystem
        if settings.no_auth:
            log.warning("Authorization is OFF (--no-auth): every client can read and write every resource")
        if settings.demo:
            from fhir_server.demo import load_demo_if_empty
            from fhir_server.demo.auth import ensure_demo_auth

            loaded = await load_demo_if_empty(svc)
            log.info("demo data: %s", f"loaded {loaded} bundles" if loaded else "database not empty, skipped")
            for line in await ensure_demo_auth(svc):  # demo logins (synthetic accounts: passwords printed)
                log.info("%s", line)
        await keys.ensure(svc.db)  # the SMART signing key and session secret, generated on first start
        await audit.start(svc)  # the background AuditEvent writer (issue 7)
        log.info("CARES FHIR %s serving FHIR R4 at %s (%s)", __version__, settings.fhir_base, svc.db.dialect)
        try:
            yield
        finally:
            await audit.stop(svc)  # writes what is still queued
            await svc.db.close()

    web = FastAPI(title="CARES FHIR", version=__version__, lifespan=lifespan)

    @web.get("/")
    async def root() -> dict[str, str]:
        return {"name": "CARES FHIR", "fhir": settings.fhir_base, "version": __version__}

    @web.get("/healthz")
    async def healthz() -> dict[str, str]:
        async with svc.db.read() as c:
            await c.one("SELECT 1")
        return {"status": "ok"}

    web.include_router(guide_router)  # /ig/: the CARES implementation guide as HTML pages
    web.include_router(auth_router(svc))  # /auth/…, /fhir/.well-known/…: the SMART authorization server

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/fhir" or path.startswith("/fhir/")) \
                and not path.startswith("/fhir/.well-known/"):
            await fhir(scope, receive, send)
        else:
            await web(scope, receive, send)

    # CORS, for browser SMART apps served from another origin (issue 7; tests/interop): the FHIR API and the token,
    # introspection, revocation and JWKS endpoints take bearer tokens or form credentials, never cookies, so any
    # origin may call them (preflights answered here, before authorization); the login/consent pages get no CORS.
    cors = CORSMiddleware(route, allow_origins=["*"], allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                          allow_headers=["*"], max_age=600,
                          expose_headers=["Location", "Content-Location", "ETag", "Last-Modified", "WWW-Authenticate"])
    cors_paths = ("/fhir/", "/auth/token", "/auth/introspect", "/auth/revoke", "/auth/jwks")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        await (cors if path == "/fhir" or path.startswith(cors_paths) else route)(scope, receive, send)

    app.services = svc  # type: ignore[attr-defined]  # for the CLI and tests
    return app
