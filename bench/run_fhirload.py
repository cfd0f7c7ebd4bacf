#!/usr/bin/env python3
"""Our server vs the bare-stack limit on the shared fhirload workload, in one command.

    .venv/bin/python bench/run_fhirload.py [--patients 2000] [--duration 15] [--concurrency 16]
                                           [--skip-limit] [--sqlite] [--phases read,search_careplan,...]

1. fresh PostgreSQL databases ``cares_bench`` (ours) and ``fhirlimit`` (the limit's);
2. ours: ``cares-fhir serve`` (one process, port 8301), fhirload ``seed`` (P patients as transactions),
   then the run phases with ``--server-pids`` and ``--quiet-wait``; stop it;
3. the limit: ``limit_server.py load`` + ``serve`` (port 8302), the ``read`` and ``search_careplan`` phases;
4. a table on stdout and ``bench/out/fhirload-<time>.json``: ours vs limit req/s, ratios, targets MET/NOT MET.

The shared scripts (fhirload.py, limit_server.py) are used in place from $CARES_SHARED_BENCH (default
../shared/bench next to the repo) with the interpreter of bench/.venv-load (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

RUN_PHASES = ["read", "search_careplan", "search_task", "search_sr_include", "create_task", "update_task"]
LIMIT_PHASES = ["read", "search_careplan"]
OURS_DB = "cares_bench"
LIMIT_DB = "fhirlimit"

# (key, description, how to evaluate) — absolute targets for our server
TARGETS = [
    ("read_ratio", "reads >= 60% of the limit", 0.60),
    ("create_task", "creates >= 500/s", 500.0),
    ("update_task", "If-Match updates >= 450/s", 450.0),
    ("seed_tx", "seed transactions >= 50/s", 50.0),
]


def run_fhirload(args: argparse.Namespace, base: str, state: Path, phases: list[str], label: str,
                 server_pid: int | None, extra: list[str] | None = None) -> dict[str, Any]:
    """Run fhirload.py with the load venv; stderr (its tables) streams through, the JSON line is returned."""
    cmd = [str(bl.load_python()), str(bl.shared_bench() / "fhirload.py"), "--base", base, "--state", str(state),
           "--phases", ",".join(phases), "--concurrency", str(args.concurrency), "--label", label]
    if server_pid:
        cmd += ["--server-pids", str(server_pid)]
    cmd += extra or []
    bl.eprint("$ " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"fhirload failed (exit {p.returncode}) for {label} {phases}")
    return json.loads(lines[-1])


def run_phases_args(args: argparse.Namespace) -> list[str]:
    return ["--duration", str(args.duration), "--quiet-wait", str(args.quiet_wait), "--warmup", str(args.warmup)]


def bench_ours(args: argparse.Namespace, out: Path, stamp: str) -> dict[str, Any]:
    if args.sqlite:
        url = f"sqlite:///{out / 'cares_bench.sqlite3'}"
    else:
        url = bl.pg_url(OURS_DB)
    bl.reset_database(url)
    log = out / f"ours-server-{stamp}.log"
    base = f"http://127.0.0.1:{args.port}/fhir"
    state = out / f"ours-{stamp}.state.json"
    label = ("ours-sqlite" if args.sqlite else "ours") + (f"@{args.source.name}" if args.source else "")
    bl.eprint(f"== starting our server on {url} (log {log})")
    proc = bl.start_ours(url, args.port, log, args.source)
    try:
        t0 = time.monotonic()
        seed = run_fhirload(args, base, state, ["seed"], label, proc.pid,
                            ["--patients", str(args.patients)])
        bl.eprint(f"   seeded {args.patients} patients in {time.monotonic() - t0:.1f}s")
        analyzed = False
        if args.analyze:
            t1 = time.monotonic()
            bl.analyze(url)
            analyzed = True
            bl.eprint(f"   ANALYZE after seeding took {time.monotonic() - t1:.1f}s")
        runs = run_fhirload(args, base, state, args.phases, label, proc.pid, run_phases_args(args)) \
            if args.phases else None
    finally:
        bl.stop_process(proc)
    rows = list(seed["results"]) + (list(runs["results"]) if runs else [])
    return {"label": label, "database_url": url, "analyzed_after_seed": analyzed,
            "pg_autovacuum": None if args.sqlite else bl.pg_setting("autovacuum"),
            "server_log": str(log), "server_log_errors": bl.log_errors(log),
            "seed_report": seed, "run_report": runs, "results": {r["op"]: r for r in rows}}


def bench_limit(args: argparse.Namespace, out: Path, stamp: str) -> dict[str, Any] | None:
    phases = [p for p in args.phases if p in LIMIT_PHASES]
    if not phases:
        return None
    bl.recreate_pg_db(LIMIT_DB)
    limit_py = bl.shared_bench() / "limit_server.py"
    state = out / f"limit-{stamp}.state.json"
    env = {"LIMIT_DB": LIMIT_DB}
    bl.eprint(f"== loading the limit ({args.patients} patients) into {LIMIT_DB}")
    cmd = [str(bl.load_python()), str(limit_py), "load", "--patients", str(args.patients), "--state", str(state)]
    bl.eprint("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, env={**os.environ, **env})
    log = out / f"limit-server-{stamp}.log"
    proc = bl.start_process([str(bl.load_python()), str(limit_py), "serve", "--port", str(args.limit_port)],
                            log, env=env)
    try:
        bl.wait_http(f"http://127.0.0.1:{args.limit_port}/healthcheck", proc)
        rep = run_fhirload(args, f"http://127.0.0.1:{args.limit_port}/fhir", state, phases, "limit", proc.pid,
                           run_phases_args(args))
    finally:
        bl.stop_process(proc)
    return {"label": "limit", "server_log": str(log), "run_report": rep,
            "results": {r["op"]: r for r in rep["results"]}}


def cpu_ms_per_req(r: dict[str, Any] | None) -> float | None:
    """(server + postgres + load generator) CPU ms per successful request of one fhirload phase."""
    if not r or not r.get("n"):
        return None
    return round(1e3 * (r["server_cpu_s"] + r["postgres_cpu_s"] + r["client_cpu_s"]) / r["n"], 3)


def evaluate(ours: dict[str, Any], limit: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    o, lim = ours["results"], (limit or {}).get("results", {})

    def rps(d: dict[str, Any], op: str) -> float | None:
        r = d.get(op)
        return r.get("rps") if r else None

    ratios: dict[str, Any] = {}
    for op in LIMIT_PHASES:
        a, b = rps(o, op), rps(lim, op)
        ratios[op] = round(a / b, 3) if a and b else None
    # The same ratio from CPU cost instead of wall-clock throughput: limit CPU ms/request (server + postgres +
    # load generator) over ours. Both phases saturate the machine, so on a quiet box rps ~ 1 / CPU per request;
    # this estimate is much less disturbed by other processes burning CPU during one run but not the other.
    for op in LIMIT_PHASES:
        a, b = cpu_ms_per_req(o.get(op)), cpu_ms_per_req(lim.get(op))
        ratios[f"{op}_by_cpu"] = round(b / a, 3) if a and b else None
    targets = []
    for key, desc, thr in TARGETS:
        val = ratios.get("read") if key == "read_ratio" else rps(o, key)
        met = None if val is None else val >= thr
        targets.append({"target": key, "description": desc, "threshold": thr, "value": val,
                        "status": "n/a" if met is None else ("MET" if met else "NOT MET")})
    return ratios, targets


def fmt(v: Any, w: int) -> str:
    return ("-" if v is None else str(v)).rjust(w)


def print_report(ours: dict[str, Any], limit: dict[str, Any] | None, ratios: dict[str, Any],
                 targets: list[dict[str, Any]]) -> None:
    o, lim = ours["results"], (limit or {}).get("results", {})
    print()
    print(f"{'op':<18}{ours['label'] + ' req/s':>17}{'p50 ms':>9}{'p99 ms':>9}{'err':>6}{'other_cpu_s':>12}"
          f"{'cpu ms/req':>11}{'limit req/s':>13}{'other_cpu_s':>12}{'cpu ms/req':>11}{'ours/limit':>11}"
          f"{'by cpu':>8}")
    for op in ["seed_tx"] + RUN_PHASES:
        r = o.get(op)
        if not r:
            continue
        lr = lim.get(op, {})
        print(f"{op:<18}{fmt(r.get('rps'), 17)}{fmt(r.get('p50_ms'), 9)}{fmt(r.get('p99_ms'), 9)}"
              f"{fmt(r.get('errors'), 6)}{fmt(r.get('other_cpu_s'), 12)}{fmt(cpu_ms_per_req(r), 11)}"
              f"{fmt(lr.get('rps'), 13)}{fmt(lr.get('other_cpu_s'), 12)}{fmt(cpu_ms_per_req(lr), 11)}"
              f"{fmt(ratios.get(op), 11)}{fmt(ratios.get(op + '_by_cpu'), 8)}")
    print("  other_cpu_s: CPU-s used during the phase by unrelated processes (phase wall ~ duration; 2 cores).")
    print("  cpu ms/req: server + postgres + load generator; 'by cpu' = limit cpu ms/req / ours (noise-robust).")
    print(f"  ANALYZE between seeding and the run phases: {'yes' if ours.get('analyzed_after_seed') else 'no'}"
          f" (PostgreSQL autovacuum: {ours.get('pg_autovacuum') or 'n/a'})")
    print()
    for t in targets:
        print(f"  {t['status']:<8} {t['description']:<30} (value: {t['value']})")
    errs = {op: r.get("error_kinds") for op, r in o.items() if r.get("errors")}
    if errs:
        print(f"\n  ERRORS (ours): {errs}")
    if ours.get("server_log_errors"):
        print(f"  server log ({ours['server_log']}) error lines:")
        for ln in ours["server_log_errors"][:10]:
            print("   ", ln[:300])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--patients", type=int, default=2000, help="P, patients seeded (9 resources each)")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per run phase (after warmup)")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds at the start of each phase")
    ap.add_argument("--concurrency", type=int, default=16, help="in-flight requests (seed and run phases)")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="wait up to this many s for the machine to go quiet before each phase")
    ap.add_argument("--phases", default=",".join(RUN_PHASES), help="run phases for our server (comma list)")
    ap.add_argument("--skip-limit", action="store_true", help="do not run the limit server")
    ap.add_argument("--sqlite", action="store_true", help="run ours on a SQLite file (implies --skip-limit)")
    ap.add_argument("--no-analyze", dest="analyze", action="store_false",
                    help="do not run ANALYZE on our database between seeding and the run phases (by default it"
                         " runs, standing in for autovacuum, which is off on the benchmark machine's PostgreSQL;"
                         " the limit's loader ANALYZEs its table too)")
    ap.add_argument("--port", type=int, default=8301, help="port for our server")
    ap.add_argument("--source", type=Path, default=None,
                    help="run our server from this checkout (e.g. a git worktree of an older commit)")
    ap.add_argument("--limit-port", type=int, default=8302, help="port for the limit server")
    args = ap.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for p in args.phases:
        if p not in RUN_PHASES:
            raise SystemExit(f"unknown phase {p!r} (choose from {','.join(RUN_PHASES)})")
    bl.shared_bench()
    bl.load_python()
    out = bl.out_dir()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    started = bl.now_utc()
    ours = bench_ours(args, out, stamp)
    limit = None if (args.skip_limit or args.sqlite) else bench_limit(args, out, stamp)
    ratios, targets = evaluate(ours, limit)
    print_report(ours, limit, ratios, targets)
    report = {"started": started, "finished": bl.now_utc(), "machine": bl.machine_info(),
              "command": " ".join([Path(sys.executable).name] + sys.argv),
              "settings": {"patients": args.patients, "duration_s": args.duration, "warmup_s": args.warmup,
                           "concurrency": args.concurrency, "quiet_wait_s": args.quiet_wait,
                           "phases": args.phases, "sqlite": args.sqlite,
                           "analyze_after_seed": args.analyze},
              "ours": ours, "limit": limit, "ratios": ratios, "targets": targets}
    path = out / f"fhirload-{'sqlite-' if args.sqlite else ''}{stamp}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
