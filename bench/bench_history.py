#!/usr/bin/env python3
"""History and vread throughput.

    .venv/bin/python bench/bench_history.py                       # own server on PostgreSQL (cares_bench_hist)
    .venv/bin/python bench/bench_history.py --sqlite              # own server on a SQLite file
    .venv/bin/python bench/bench_history.py --base http://127.0.0.1:8080/fhir   # a running server

Setup: one Patient with --versions (200) versions (1 create + 199 PUTs, timed sequentially) plus --others (50)
Patients with --other-versions (4) versions each, so Patient type history holds 400 versions.
Then, each for --duration s at --concurrency threads (one keep-alive connection each), pages of --page-size (50):
  instance_first   GET Patient/<id>/_history?_count=50
  instance_walk    follow the next links through all 4 pages, again and again (every page counts as a read)
  type_first       GET Patient/_history?_count=50
  type_walk        follow the next links through all 8 type-history pages
  vread            GET Patient/<id>/_history/<random version>
Reports reads/s and p50/p95/p99 ms per page, writes bench/out/history-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

DEFAULT_DB = "cares_bench_hist"


def patient(i: int, v: int) -> dict[str, Any]:
    return {"resourceType": "Patient",
            "identifier": [{"system": "https://bench.cares.example/hist", "value": f"h-{i}"}],
            "active": True,
            "name": [{"use": "official", "family": "Historia", "given": ["Ana", f"v{v}"]}],
            "telecom": [{"system": "phone", "value": f"617-555-{1000 + v % 9000}", "use": "home"}],
            "gender": "female", "birthDate": "2014-05-17",
            "address": [{"line": [f"{v} Beacon St"], "city": "Boston", "state": "MA", "postalCode": "02115"}]}


def make_versions(h: bl.Http, i: int, n: int) -> tuple[str, float]:
    """Create Patient i and update it to n versions; returns (id, seconds spent on the PUTs)."""
    st, hdr, data = h.req("POST", "Patient", patient(i, 1))
    if st != 201:
        raise SystemExit(f"create failed: {st} {data[:300]!r}")
    rid = json.loads(data)["id"]
    t0 = time.perf_counter()
    for v in range(2, n + 1):
        body = patient(i, v)
        body["id"] = rid
        st, hdr, data = h.req("PUT", f"Patient/{rid}", body, {"If-Match": f'W/"{v - 1}"'})
        if st != 200:
            raise SystemExit(f"update to v{v} failed: {st} {data[:300]!r}")
    return rid, time.perf_counter() - t0


def next_link(bundle: dict[str, Any]) -> str | None:
    for ln in bundle.get("link", []):
        if ln.get("relation") == "next":
            return ln["url"]
    return None


def walk_all(h: bl.Http, first: str) -> tuple[int, int]:
    """(pages, entries) of a full walk from ``first``."""
    url: str | None = first
    pages = entries = 0
    while url:
        st, _, data = h.req("GET", url)
        if st != 200:
            raise SystemExit(f"GET {url} -> {st} {data[:300]!r}")
        b = json.loads(data)
        pages += 1
        entries += len(b.get("entry", []))
        url = next_link(b)
    return pages, entries


def get_ok(h: bl.Http, url: str) -> bytes:
    st, _, data = h.req("GET", url)
    if st != 200:
        raise RuntimeError(f"GET {url} -> {st}: {data[:200]!r}")
    return data


def walker(first: str) -> Any:
    """An op that reads one page per call, following next links per thread and restarting at the end."""
    local = threading.local()

    def op(h: bl.Http, i: int) -> bool:
        url = getattr(local, "url", None) or first
        b = json.loads(get_ok(h, url))
        local.url = next_link(b)
        return True

    return op


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_server_args(ap, default_db=DEFAULT_DB, sqlite_name="bench_hist.sqlite3", port=8304)
    ap.add_argument("--versions", type=int, default=200)
    ap.add_argument("--others", type=int, default=50)
    ap.add_argument("--other-versions", type=int, default=4)
    ap.add_argument("--page-size", type=int, default=50)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    out = bl.out_dir()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base, url, proc = bl.server_from_args(args, "history", stamp)
    res: dict[str, Any] = {"ts": bl.now_utc(), "base": base, "database_url": url, "versions": args.versions,
                           "others": args.others, "other_versions": args.other_versions,
                           "page_size": args.page_size, "concurrency": args.concurrency,
                           "duration_s": args.duration, "machine": bl.machine_info(), "phases": {}}
    try:
        h = bl.Http(base)
        rid, put_s = make_versions(h, 0, args.versions)
        res["setup_sequential_puts_per_s"] = round((args.versions - 1) / put_s, 1) if put_s else None
        for i in range(1, args.others + 1):
            make_versions(h, i, args.other_versions)
        ps = args.page_size
        inst_first = f"Patient/{rid}/_history?_count={ps}"
        type_first = f"Patient/_history?_count={ps}"
        pages, entries = walk_all(h, inst_first)
        if entries != args.versions:
            raise SystemExit(f"instance history returned {entries} entries, expected {args.versions}")
        tpages, tentries = walk_all(h, type_first)
        res["instance_pages"], res["type_pages"], res["type_entries"] = pages, tpages, tentries
        h.close()
        bl.eprint(f"   {args.versions} versions of Patient/{rid} ({pages} pages), type history {tentries} "
                  f"entries ({tpages} pages); sequential PUTs {res['setup_sequential_puts_per_s']}/s")

        def vread(hh: bl.Http, i: int) -> bool:
            get_ok(hh, f"Patient/{rid}/_history/{random.randint(1, args.versions)}")
            return True

        phases = {
            "instance_first": lambda hh, i: bool(get_ok(hh, inst_first)),
            "instance_walk": walker(inst_first),
            "type_first": lambda hh, i: bool(get_ok(hh, type_first)),
            "type_walk": walker(type_first),
            "vread": vread,
        }
        print(f"{'phase':<16}{'reads/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'err':>6}"
              f"{'cli cpu s':>10}{'srv cpu s':>10}{'machine s':>10}")
        for name, op in phases.items():
            r = bl.timed_loop(base, op, args.duration, args.concurrency, server_pid=proc.pid if proc else None)
            res["phases"][name] = r
            print(f"{name:<16}{r['rps']:>9}{r['p50_ms']!s:>9}{r['p95_ms']!s:>9}{r['p99_ms']!s:>9}{r['errors']:>6}"
                  f"{r['client_cpu_s']:>10}{r['server_cpu_s']!s:>10}{r['machine_busy_cpu_s']:>10}"
                  + (f"  first error: {r['first_error']}" if r.get("first_error") else ""), flush=True)
    finally:
        if proc is not None:
            bl.stop_process(proc)
    path = out / f"history-{'sqlite-' if args.sqlite else ''}{stamp}.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
