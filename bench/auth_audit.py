"""Auth + audit cost on reads (issue 7): reads/s of ``GET /fhir/CarePlan/{id}`` and of a CarePlan search on the
open server (``--no-auth``) against the same server code with authorization on, a bearer token on every request
and an AuditEvent written (by the background writer) for every read and search.

    .venv/bin/python bench/auth_audit.py [--sqlite] [--duration 6] [--concurrency 4] [--rounds 2]

Two server processes (one process each) on the same database, started once: the open one (``--no-auth``) and one
with authorization on. The phases alternate between them (only one is loaded at a time), ``--rounds`` times:

* ``open``: no token, nothing enforced or audited;
* ``system``: a ``system/*.rs`` token (backend service; no compartment filter) — the cost of the token check and
  the audit trail alone;
* ``patient``: a ``patient/*.rs`` token whose launch patient owns the CarePlans read — adds the compartment check
  of each read and the compartment filter of each search.

Tokens are minted straight into the database (``fhir_server.auth.tokens.issue``), like the tests' ``mint``.
After the run the AuditEvents stored are counted against the authorized requests made (none may be missing), and
the audit trail's own cost is measured in process: CPU per event recorded through the background writer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

N_CAREPLANS = 200
SEARCH = "CarePlan?subject=Patient/{pid}&status=active&_count=10"


def start_server(url: str, port: int, log: Path, *, no_auth: bool) -> Any:
    env = {"CARES_FHIR_LOG_LEVEL": "warning", "CARES_FHIR_NO_AUTH": "true" if no_auth else "false"}
    proc = bl.start_process([str(bl.CARES_FHIR), "serve", "--database-url", url, "--port", str(port)], log, env=env,
                            cwd=bl.REPO)
    try:
        bl.wait_http(f"http://127.0.0.1:{port}/fhir/metadata", proc)
    except BaseException:
        bl.stop_process(proc)
        raise
    return proc


def seed(base: str) -> tuple[str, list[str]]:
    """One child with ``N_CAREPLANS`` CarePlans; (patient id, CarePlan ids)."""
    h = bl.Http(base)
    status, _, body = h.req("POST", "Patient", {"resourceType": "Patient", "name": [{"family": "Bench"}],
                                                "birthDate": "2014-05-06"})
    if status != 201:
        raise SystemExit(f"seeding the Patient failed: HTTP {status} {body[:300]!r}")
    pid = json.loads(body)["id"]
    ids = []
    for i in range(N_CAREPLANS):
        cp = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": f"plan {i}",
              "subject": {"reference": f"Patient/{pid}"}, "description": "bench care plan " * 8}
        status, _, body = h.req("POST", "CarePlan", cp)
        if status != 201:
            raise SystemExit(f"seeding a CarePlan failed: HTTP {status} {body[:300]!r}")
        ids.append(json.loads(body)["id"])
    h.close()
    return pid, ids


def mint(url: str, scope: str, patient: str | None = None) -> str:
    sys.path.insert(0, str(bl.REPO))
    from fhir_server.auth import tokens
    from fhir_server.storage.db import create_database

    async def run() -> str:
        db = create_database(url, pool_size=1)
        await db.open()
        try:
            token, _ = await tokens.issue(db, kind="access", client_id="bench-app", scope=scope, ttl_seconds=7200,
                                          patient=patient, username="bench-user" if patient else None)
            return token
        finally:
            await db.close()

    return asyncio.run(run())


def audit_write_cost(url: str, n: int = 3000) -> float:
    """This process's CPU ms per AuditEvent for ``n`` read events recorded through the background writer (build,
    index, write in batches) on ``url`` — the audit trail's share of an authorized read, without HTTP or auth."""
    sys.path.insert(0, str(bl.REPO))
    from fhir_server import audit
    from fhir_server.auth.access import Access
    from fhir_server.auth.scopes import Scopes
    from fhir_server.config import Settings
    from fhir_server.interactions.services import Services

    async def run() -> float:
        svc = Services.create(Settings(database_url=url, pool_size=2))
        await svc.db.open()
        try:
            who = Access(client_id="bench-app", scopes=Scopes.parse("patient/*.rs"), patient="p1",
                         username="bench-user", token_id="0123456789abcdef", source="127.0.0.1")
            await audit.start(svc)
            t0 = time.process_time()
            for i in range(n):
                await audit.record(svc, audit.AuditRecord("R", "read", rtype="CarePlan", rid=f"cp{i}",
                                                          patients=("p1",), access=who, source="127.0.0.1"))
            await audit.stop(svc)
            return (time.process_time() - t0) * 1000 / n
        finally:
            await svc.db.close()

    return asyncio.run(run())


def audit_count(base: str, token: str) -> int:
    status, _, body = bl.Http(base).req("GET", "AuditEvent?_summary=count",
                                        headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        raise SystemExit(f"counting AuditEvents failed: HTTP {status}")
    return int(json.loads(body)["total"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=None, help=f"default {bl.pg_url('cares_auth_bench')}")
    ap.add_argument("--sqlite", action="store_true", help="use bench/out/auth_audit.sqlite3")
    ap.add_argument("--port", type=int, default=8307, help="the open server; the authorized one on port + 1")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    url = args.database_url or (f"sqlite:///{bl.out_dir() / 'auth_audit.sqlite3'}" if args.sqlite
                                else bl.pg_url("cares_auth_bench"))
    bl.reset_database(url)
    open_base = f"http://127.0.0.1:{args.port}/fhir"
    auth_base = f"http://127.0.0.1:{args.port + 1}/fhir"
    bl.eprint(f"== servers on {url}: open {open_base}, authorized {auth_base}")
    open_proc = start_server(url, args.port, bl.out_dir() / f"auth_audit-open-{stamp}.log", no_auth=True)
    auth_proc = None
    try:
        pid, ids = seed(open_base)
        auth_proc = start_server(url, args.port + 1, bl.out_dir() / f"auth_audit-auth-{stamp}.log", no_auth=False)
        bl.analyze(url)
        tokens = {"system": mint(url, "system/*.rs"), "patient": mint(url, "patient/*.rs", patient=pid)}
        auditor = mint(url, "system/AuditEvent.rs")
        audits_before = audit_count(auth_base, auditor)
        search = SEARCH.format(pid=pid)

        def op(path_of: Any, headers: dict[str, str]) -> Any:
            def run(http: bl.Http, i: int) -> bool:
                return http.req("GET", path_of(i), headers=headers)[0] == 200
            return run

        ops = {"read": lambda i: f"CarePlan/{ids[i % len(ids)]}", "search": lambda _i: search}
        modes = {"open": (open_base, {}, open_proc.pid)}
        for name, tok in tokens.items():
            modes[name] = (auth_base, {"Authorization": f"Bearer {tok}"}, auth_proc.pid)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {o: {m: [] for m in modes} for o in ops}
        authorized_requests = 0
        for r in range(args.rounds):
            for op_name, path_of in ops.items():
                for mode, (base, headers, spid) in modes.items():
                    t_calls = [0]

                    def counted(http: bl.Http, i: int, _f: Any = op(path_of, headers), _c: list = t_calls) -> bool:
                        _c[0] += 1
                        return _f(http, i)

                    res = bl.timed_loop(base, counted, args.duration, args.concurrency, warmup=1.0, server_pid=spid)
                    res["server_ms_per_request"] = round(res["server_cpu_s"] * 1000 / max(1, res["n"]), 3)
                    res["requests_incl_warmup"] = t_calls[0]
                    if mode != "open":
                        authorized_requests += t_calls[0]
                    results[op_name][mode].append(res)
                    bl.eprint(f"   round {r + 1} {op_name:<6} {mode:<8} {res['rps']:>8.1f}/s  p50 {res['p50_ms']} ms"
                              f"  errors {res['errors']}  server ms/req {res['server_ms_per_request']}")
        time.sleep(1.0)  # the background writer flushes within 0.2 s
        audits = audit_count(auth_base, auditor) - audits_before - 1  # minus the count request's own event
        write_ms = audit_write_cost(url)
    finally:
        if auth_proc is not None:
            bl.stop_process(auth_proc)
        bl.stop_process(open_proc)

    print(f"\nreads/s, best of {args.rounds} rounds ({args.concurrency} client threads, {args.duration:.0f} s phases):")
    summary: dict[str, dict[str, Any]] = {}
    for op_name, per_mode in results.items():
        best = {m: max(x["rps"] for x in v) for m, v in per_mode.items()}
        cpu = {m: min(x["server_ms_per_request"] for x in v) for m, v in per_mode.items()}
        summary[op_name] = {"rps": best, "server_ms": cpu,
                            "ratio": {m: round(best["open"] / best[m], 2) for m in best if m != "open"}}
        print(f"  {op_name:<6} open {best['open']:>7.0f}/s ({cpu['open']:.2f} ms CPU)  "
              + "  ".join(f"{m} {best[m]:>7.0f}/s ({cpu[m]:.2f} ms CPU, open/{m} = {best['open'] / best[m]:.2f}x)"
                          for m in best if m != "open"))
    print(f"AuditEvents written during the run: {audits} for {authorized_requests} authorized requests "
          f"({'none missing' if audits >= authorized_requests else f'{authorized_requests - audits} MISSING'})")
    print(f"audit trail alone (in process, background writer, batches of up to 500): {write_ms:.3f} ms CPU per event "
          "(plus the database's own CPU)")
    path = bl.out_dir() / f"auth_audit-{stamp}.json"
    path.write_text(json.dumps({"machine": bl.machine_info(), "settings": vars(args), "database_url": url,
                                "results": results, "summary": summary, "audit_events": audits,
                                "authorized_requests": authorized_requests,
                                "audit_write_cpu_ms_per_event": write_ms}, indent=1, default=str))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
