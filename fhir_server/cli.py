"""The ``cares-fhir`` command: ``serve``, ``load``, ``reindex``, ``db upgrade``, ``db recount``, ``guide``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

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
                   help="serve without authorization (the only mode until SMART authorization lands)")
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

    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
