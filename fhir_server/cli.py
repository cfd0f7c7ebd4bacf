"""The ``cares-fhir`` command: ``serve``, ``load``, ``reindex``, ``db upgrade``, ``db recount``, ``guide``, and the
SMART authorization server's administration: ``clients add|list``, ``users add|list``, ``launch``,
``keys rotate|list``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from fhir_server import __version__
from fhir_server.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(host=getattr(args, "host", None), port=getattr(args, "port", None),
                             database_url=args.database_url, demo=True if getattr(args, "demo", False) else None,
                             base_url=getattr(args, "base_url", None),
                             no_auth=True if getattr(args, "no_auth", False) else None)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.app import create_app

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.access_log:
        logging.getLogger("cares_fhir.access").setLevel(logging.WARNING)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False,
                log_level="warning", lifespan="on", loop="auto", http="auto")
    return 0


def load(args: argparse.Namespace) -> int:
    from fhir_server.interactions.services import Services
    from fhir_server.loader import load_paths
    from fhir_server.storage import migrate

    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    svc = Services.create(settings)

    async def run() -> tuple[int, list[str]]:
        from fhir_server.interactions.search_parameters import load_stored

        await svc.db.open()
        try:
            await load_stored(svc)  # index with the stored custom SearchParameters too
            return await load_paths(svc, [Path(p) for p in args.files], progress=not args.quiet)
        finally:
            await svc.db.close()

    done, errors = asyncio.run(run())
    for e in errors[:20]:
        print(f"error: {e}", file=sys.stderr)
    print(f"loaded {done} resources, {len(errors)} errors", file=sys.stderr)
    return 1 if errors else 0


def reindex(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fhir_server.definitions import resource_types
    from fhir_server.interactions import reindex as reindexing
    from fhir_server.interactions.search_parameters import load_stored
    from fhir_server.interactions.services import Services
    from fhir_server.storage import migrate

    if args.type is not None and args.type not in resource_types():
        print(f"error: unknown resource type {args.type!r}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return 2
    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    svc = Services.create(settings)

    async def run() -> int:
        await svc.db.open()
        try:
            await load_stored(svc)
            total = await reindexing.count(svc, args.type)
            with tqdm(total=total, unit="res", disable=args.quiet) as bar:
                return await reindexing.reindex(svc, args.type, batch=args.batch, progress=bar.update)
        finally:
            await svc.db.close()

    done = asyncio.run(run())
    print(f"reindexed {done} {args.type or ''} resources".replace("  ", " "), file=sys.stderr)
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from fhir_server.storage import migrate

    migrate.upgrade(_settings(args).database_url)
    print("database schema is up to date", file=sys.stderr)
    return 0


def db_recount(args: argparse.Namespace) -> int:
    """Rebuild the live-resource counters (``resource_count``) from the stored resources: needed only when
    resources were written by a server older than migration 0006 after the upgrade, or by hand."""
    from fhir_server.interactions.services import Services
    from fhir_server.storage import migrate

    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    svc = Services.create(settings)

    async def run() -> dict[str, int]:
        await svc.db.open()
        try:
            return await svc.repo.recount()
        finally:
            await svc.db.close()

    counts = asyncio.run(run())
    print(f"counted {sum(counts.values())} live resources of {len(counts)} types", file=sys.stderr)
    return 0


def guide(args: argparse.Namespace) -> int:
    """Write the CARES guide's HTML pages (those the server serves under /ig/) as static files."""
    from fhir_server.guide import write

    n = write(Path(args.out), args.root if args.root.endswith("/") else args.root + "/")
    print(f"wrote {n} guide pages to {args.out}", file=sys.stderr)
    return 0


def _with_db(args: argparse.Namespace, fn: Any) -> Any:
    """Run ``await fn(db, settings)`` on the (migrated) database of ``args``."""
    from fhir_server.storage import migrate
    from fhir_server.storage.db import create_database

    settings = _settings(args)
    migrate.upgrade(settings.database_url)

    async def run() -> Any:
        db = create_database(settings.database_url, pool_size=1)
        await db.open()
        try:
            return await fn(db, settings)
        finally:
            await db.close()

    return asyncio.run(run())


def clients_add(args: argparse.Namespace) -> int:
    import json

    from fhir_server.auth import clients

    jwks = None
    if args.jwks_file:
        try:
            jwks = json.loads(Path(args.jwks_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"error: cannot read the JWKS file: {type(e).__name__}", file=sys.stderr)
            return 2
    method = ("client_secret_basic" if args.secret else "private_key_jwt" if (jwks or args.jwks_url) else "none")
    if method != "private_key_jwt" and not args.redirect_uri:
        print("error: --redirect-uri is required for apps (backend services use --jwks-file/--jwks-url)",
              file=sys.stderr)
        return 2
    try:
        client, secret = _with_db(args, lambda db, _: clients.register(
            db, name=args.name, redirect_uris=args.redirect_uri or [], scope=args.scopes, auth_method=method,
            jwks=jwks, jwks_uri=args.jwks_url, client_id=args.client_id))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"client_id: {client.client_id}")
    if secret:
        print(f"client_secret: {secret}")
        print("(the secret is shown only now; only its hash is stored)", file=sys.stderr)
    return 0


def clients_list(args: argparse.Namespace) -> int:
    from fhir_server.auth import clients

    for c in _with_db(args, lambda db, _: clients.list_clients(db)):
        print(f"{c.client_id}\t{c.auth_method}\t{c.name}\t{' '.join(c.redirect_uris)}\t{c.scope}"
              + ("\tdisabled" if c.disabled else ""))
    return 0


def users_add(args: argparse.Namespace) -> int:
    import getpass

    from fhir_server.auth import users

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    try:
        user = _with_db(args, lambda db, _: users.add(db, username=args.username, password=password,
                                                          fhir_user=args.fhir_user, roles=args.role or [],
                                                          display=args.display))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"user {user.username} ({user.fhir_user or 'no fhirUser'}) added")
    return 0


def users_list(args: argparse.Namespace) -> int:
    from fhir_server.auth import users

    for u in _with_db(args, lambda db, _: users.list_users(db)):
        print(f"{u.username}\t{u.fhir_user or ''}\t{','.join(u.roles)}\t{u.display or ''}"
              + ("\tdisabled" if u.disabled else ""))
    return 0


def launch(args: argparse.Namespace) -> int:
    from fhir_server.auth import launches
    from fhir_server.auth.routes import launch_url

    body: dict[str, Any] = {"patient": args.patient, "encounter": args.encounter, "fhirUser": args.user,
                            "intent": args.intent}
    try:
        ctx = launches.validate({k: v for k, v in body.items() if v is not None})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    async def run(db: Any, settings: Settings) -> tuple[str, str]:
        return await launches.create(db, ctx, ttl_seconds=settings.launch_seconds, created_by="cli"), settings.fhir_base

    value, base = _with_db(args, run)
    print(f"launch: {value}")
    if args.app_url:
        print(launch_url(args.app_url, base, value))
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    from fhir_server.auth import keys

    async def run(db: Any, _: Settings) -> str:
        await keys.ensure(db)
        return await keys.rotate(db)

    print(f"new signing key: {_with_db(args, run)} (the previous keys stay published, inactive)")
    return 0


def keys_list(args: argparse.Namespace) -> int:
    from fhir_server.auth import keys

    for kid, alg, active, _ in _with_db(args, lambda db, _: keys.list_keys(db)):
        print(f"{kid}\t{alg}\t{'active' if active else 'inactive'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cares-fhir", description="CARES FHIR: FHIR R4 server for CARES for Kids")
    ap.add_argument("--version", action="version", version=__version__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def db_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", default=None,
                       help="sqlite:///path (default: a SQLite file) or postgresql+psycopg://user@host:port/db "
                            "[env CARES_FHIR_DATABASE_URL]")

    s = sub.add_parser("serve", help="run the FHIR server")
    s.add_argument("--host", default=None, help="[env CARES_FHIR_HOST, default 127.0.0.1]")
    s.add_argument("--port", type=int, default=None, help="[env CARES_FHIR_PORT, default 8080]")
    s.add_argument("--base-url", default=None, help="public FHIR base URL [env CARES_FHIR_BASE_URL]")
    s.add_argument("--demo", action="store_true", help="load the demo data set into an empty database")
    s.add_argument("--no-auth", action="store_true",
                   help="serve without authorization: development only (logs a loud warning)")
    s.add_argument("--access-log", action="store_true", help="log every request (no PHI: parameter names only)")
    db_flag(s)
    s.set_defaults(fn=serve)

    ld = sub.add_parser("load", help="load Bundles (transaction/batch/collection) and NDJSON files")
    ld.add_argument("files", nargs="+")
    ld.add_argument("--quiet", action="store_true", help="no progress bar")
    db_flag(ld)
    ld.set_defaults(fn=load)

    ri = sub.add_parser("reindex", help="rebuild the search index of stored resources (after adding a "
                        "custom SearchParameter), in batches, with a progress bar")
    ri.add_argument("--type", default=None, help="only resources of this type (default: all)")
    ri.add_argument("--batch", type=int, default=500, help="resources per transaction (default 500)")
    ri.add_argument("--quiet", action="store_true", help="no progress bar")
    db_flag(ri)
    ri.set_defaults(fn=reindex)

    dbp = sub.add_parser("db", help="database administration")
    dbsub = dbp.add_subparsers(dest="dbcmd", required=True)
    up = dbsub.add_parser("upgrade", help="create or migrate the schema")
    db_flag(up)
    up.set_defaults(fn=db_upgrade)
    rc = dbsub.add_parser("recount", help="rebuild the per-type resource counters (_total of type-only "
                          "searches) from the stored resources")
    db_flag(rc)
    rc.set_defaults(fn=db_recount)

    gd = sub.add_parser("guide", help="write the implementation guide's HTML pages (served at /ig/) to a directory")
    gd.add_argument("--out", required=True, help="output directory")
    gd.add_argument("--root", default="/ig/", help="URL path the directory is served at (default /ig/)")
    gd.set_defaults(fn=guide)

    cl = sub.add_parser("clients", help="SMART clients (apps and backend services)")
    clsub = cl.add_subparsers(dest="clcmd", required=True)
    ca = clsub.add_parser("add", help="register a client; prints its client_id (and secret, once)")
    ca.add_argument("--name", required=True)
    ca.add_argument("--redirect-uri", action="append", default=[], help="exact redirect URI (repeatable)")
    ca.add_argument("--scopes", required=True, help="the scopes the client may be granted (space separated)")
    ca.add_argument("--client-id", default=None, help="a chosen client id (default: random)")
    kind = ca.add_mutually_exclusive_group()
    kind.add_argument("--public", action="store_true", help="a public app (no secret, PKCE) [default]")
    kind.add_argument("--secret", action="store_true", help="a confidential app (client_secret_basic)")
    kind.add_argument("--jwks-file", default=None, help="private_key_jwt with this JWKS (public keys)")
    kind.add_argument("--jwks-url", default=None, help="private_key_jwt with the JWKS at this URL")
    db_flag(ca)
    ca.set_defaults(fn=clients_add)
    cls = clsub.add_parser("list", help="list the clients")
    db_flag(cls)
    cls.set_defaults(fn=clients_list)

    us = sub.add_parser("users", help="login users of the authorization server")
    ussub = us.add_subparsers(dest="uscmd", required=True)
    ua = ussub.add_parser("add", help="add a user (password from --password-stdin or a prompt)")
    ua.add_argument("--username", required=True)
    ua.add_argument("--fhir-user", default=None, help="Practitioner/1, PractitionerRole/…, RelatedPerson/…, Patient/…")
    ua.add_argument("--role", action="append", default=[], help="a CARES role, e.g. care-coordinator (repeatable)")
    ua.add_argument("--display", default=None)
    ua.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    db_flag(ua)
    ua.set_defaults(fn=users_add)
    ul = ussub.add_parser("list", help="list the users")
    db_flag(ul)
    ul.set_defaults(fn=users_list)

    la = sub.add_parser("launch", help="create an EHR launch context; prints the launch value (and app URL)")
    la.add_argument("--patient", default=None)
    la.add_argument("--encounter", default=None)
    la.add_argument("--user", default=None, help="the fhirUser, e.g. Practitioner/1")
    la.add_argument("--intent", default=None)
    la.add_argument("--app-url", default=None, help="the app's launch URL (prints <app-url>?iss=…&launch=…)")
    la.add_argument("--base-url", default=None, help="public FHIR base URL [env CARES_FHIR_BASE_URL]")
    db_flag(la)
    la.set_defaults(fn=launch)

    ky = sub.add_parser("keys", help="the authorization server's signing keys")
    kysub = ky.add_subparsers(dest="kycmd", required=True)
    kr = kysub.add_parser("rotate", help="add a new active signing key (the old ones stay published)")
    db_flag(kr)
    kr.set_defaults(fn=keys_rotate)
    kl = kysub.add_parser("list", help="list the signing keys")
    db_flag(kl)
    kl.set_defaults(fn=keys_list)

    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
