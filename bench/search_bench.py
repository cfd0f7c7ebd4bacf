"""Search latency at scale (issue 4, point 8): p50/p95/throughput of the CARES search mix, plus the SQL
and ``EXPLAIN (ANALYZE, BUFFERS)`` of the slowest queries.

    .venv/bin/python bench/search_data.py load --children 50000 --db cares_search_1m
    .venv/bin/cares-fhir serve --database-url postgresql+psycopg://postgres@127.0.0.1:5432/cares_search_1m --port 8305 &
    .venv/bin/python bench/search_bench.py --base http://127.0.0.1:8305/fhir --db cares_search_1m --server-pid <pid>
    .venv/bin/python bench/search_bench.py --db cares_search_1m          # starts its own server (port 8305)

The data must come from ``bench/search_data.py`` (its ids: ``pat-000042``, ``org-007`` …). For each query:
one probe request (a 400 ``not-supported`` answer is recorded as "not supported yet" and the query is
skipped), ``--warmup`` requests, then ``--requests`` requests at ``--concurrency`` threads, each with its
own ``x``/``y`` (random patient, CARES organization, LOINC code…, from a fixed seed). Reported: p50/p95/
p99/max ms, throughput, entries per page, and CPU seconds of this client, the server process
(``--server-pid``), the PostgreSQL backends of ``--db``, and everything else on the machine
(``other_cpu_s``: contamination by other load), plus /proc/loadavg before the query.

"page 500": the next links of page 1 are followed (``_count=20``) up to page 500 (or the last page on small
data); only requests of that page's URL are timed.

With ``--db``, the slowest ``--explain-top`` queries (and every query over the target) are captured: the
cluster's ``log_min_duration_statement`` is set to 0 for a moment (``ALTER SYSTEM`` + reload; the log is
filtered on this database and the setting is reset right after), the query is sent 3 times, and every
SQL statement it ran is re-run under ``EXPLAIN (ANALYZE, BUFFERS)`` (statements the server runs as prepared
statements are explained as a generic plan, as the server runs them).

Output: a table on stdout and ``bench/out/search-bench-<db>-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

TARGET_P95_MS = 50.0
N_CARES_ORGS = 20  # bench/search_data.py: org-000 … org-019 own Tasks
LOINC = ["8302-2", "29463-7", "8867-4", "59408-5", "9279-1", "8310-5", "39156-5"]
CHAIN_FAMILIES = ["smith", "garcia", "nguyen", "oliveira", "pierre", "sullivan", "johnson", "chen"]
PG_LOG = Path("/var/log/postgresql/postgresql-15-main.log")


# ------------------------------------------------------------------------------------------------
# the query mix: name → (description, path(rng, n_children))
# ------------------------------------------------------------------------------------------------
def _pat(rng: random.Random, n: int) -> str:
    return f"pat-{rng.randrange(n):06d}"


QUERIES: dict[str, tuple[str, Any]] = {
    "careplan_subject": ("CarePlan?subject=Patient/x", lambda r, n: f"CarePlan?subject=Patient/{_pat(r, n)}"),
    "task_owner_status_sort": (
        "Task?owner=Organization/y&status=requested&_sort=-_lastUpdated",
        lambda r, n: (
            f"Task?owner=Organization/org-{r.randrange(N_CARES_ORGS):03d}&status=requested&_sort=-_lastUpdated"
        ),
    ),
    "task_owner_status": (
        "Task?owner=Organization/y&status=requested (no _sort)",
        lambda r, n: f"Task?owner=Organization/org-{r.randrange(N_CARES_ORGS):03d}&status=requested",
    ),
    "patient_name_smi": ("Patient?name=smi", lambda r, n: "Patient?name=smi"),
    "sr_include_revinclude": (
        "ServiceRequest?subject=Patient/x&_include=ServiceRequest:requester&_revinclude=Task:focus",
        lambda r, n: (
            f"ServiceRequest?subject=Patient/{_pat(r, n)}&_include=ServiceRequest:requester&_revinclude=Task:focus"
        ),
    ),
    "chain_name": (
        "Task?focus:ServiceRequest.subject:Patient.name=f (f from 8 family names)",
        lambda r, n: f"Task?focus:ServiceRequest.subject:Patient.name={r.choice(CHAIN_FAMILIES)}",
    ),
    "chain_identifier": (
        "Task?focus:ServiceRequest.subject:Patient.identifier=system|member-id-of-x",
        lambda r, n: (
            "Task?focus:ServiceRequest.subject:Patient.identifier="
            + quote(f"http://cares-fhir.org/fhir/sid/masshealth-member-id|1009{r.randrange(n):08d}", safe="")
        ),
    ),
    "has_observation": (
        "Patient?_has:Observation:subject:code=loinc|c (c from 7 codes)",
        lambda r, n: "Patient?_has:Observation:subject:code=" + quote(f"http://loinc.org|{r.choice(LOINC)}", safe=""),
    ),
    "obs_code_date": (
        "Observation?code=loinc|c&date=ge2025-01-01",
        lambda r, n: "Observation?code=" + quote(f"http://loinc.org|{r.choice(LOINC)}", safe="") + "&date=ge2025-01-01",
    ),
    "total_accurate": ("Observation?_total=accurate&_count=1", lambda r, n: "Observation?_total=accurate&_count=1"),
    "page500_observation": ("page 500 of Observation?_count=20", None),
    "page500_task_requested": ("page 500 of Task?status=requested&_count=20", None),
}
PAGE_WALKS = {
    "page500_observation": "Observation?_count=20",
    "page500_task_requested": "Task?status=requested&_count=20",
}


def _bundle(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        return {}


def _next(b: dict) -> str | None:
    for link in b.get("link", []):
        if link.get("relation") == "next":
            return link.get("url")
    return None


def walk_to_page(base: str, first: str, page: int) -> tuple[str, int, float]:
    """The URL of page ``page`` (or of the last page), its number, and the seconds the walk took.
    On an error response the walk stops there: that URL is returned (the probe then reports it)."""
    h = benchlib.Http(base)
    url, n = first, 1
    t0 = time.monotonic()
    try:
        while n < page:
            st, _, body = h.req("GET", url)
            if st != 200:
                break
            nxt = _next(_bundle(body))
            if not nxt:
                break
            url, n = nxt, n + 1
    finally:
        h.close()
    return url, n, time.monotonic() - t0


# ------------------------------------------------------------------------------------------------
# CPU accounting
# ------------------------------------------------------------------------------------------------
def _client_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process ``pid`` holds (its connections to PostgreSQL among them)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = str(fd.readlink())
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if len(f) > 9 and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


class PgBackends:
    """CPU seconds of the PostgreSQL backends of ``db`` that serve the server process ``server_pid``
    (matched by client port), or of all backends of ``db`` but ours when the pid is unknown."""

    def __init__(self, db: str | None, server_pid: int | None = None) -> None:
        self.db = db
        self.server_pid = server_pid
        self.conn = None
        if db:
            import psycopg

            self.conn = psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}", autocommit=True)

    def pids(self) -> list[int]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
        if self.server_pid:
            ports = _client_ports(self.server_pid)
            return [p for p, port in rows if port in ports]
        return [r[0] for r in rows]

    def snapshot(self) -> dict[int, float]:
        return {p: benchlib.proc_cpu_s(p) for p in self.pids()}

    @staticmethod
    def delta(a: dict[int, float], b: dict[int, float]) -> float:
        return sum(v - a.get(p, 0.0) for p, v in b.items())


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ------------------------------------------------------------------------------------------------
# running one query
# ------------------------------------------------------------------------------------------------
def run_query(
    base: str, paths: list[str], warmup: list[str], concurrency: int, server_pid: int | None, pg: PgBackends
) -> dict[str, Any]:
    lat: list[float] = []
    entries: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(items: list[str]) -> None:
        h = benchlib.Http(base)
        try:
            for p in items:
                t0 = time.monotonic()
                st, _, body = h.req("GET", p)
                dt = time.monotonic() - t0
                with lock:
                    if st == 200:
                        lat.append(dt)
                        entries.append(body.count(b'"mode":"match"'))
                    else:
                        errors.append(f"{st} {body[:200]!r}")
        finally:
            h.close()

    def run(items: list[str]) -> float:
        chunks = [items[k::concurrency] for k in range(concurrency)]
        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - t0

    run(warmup)
    lat.clear()
    entries.clear()
    la = loadavg()
    pg0 = pg.snapshot()
    cpu0 = (time.process_time(), benchlib.proc_cpu_s(server_pid) if server_pid else 0.0, benchlib.machine_busy_s())
    wall = run(paths)
    cpu1 = (time.process_time(), benchlib.proc_cpu_s(server_pid) if server_pid else 0.0, benchlib.machine_busy_s())
    pg_cpu = PgBackends.delta(pg0, pg.snapshot())
    s = sorted(lat)
    client, server, machine = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]
    out = {
        "n": len(s),
        "errors": len(errors),
        "wall_s": round(wall, 3),
        "rps": round(len(s) / wall, 1) if wall else None,
        "p50_ms": benchlib.pct_ms(s, 0.5),
        "p95_ms": benchlib.pct_ms(s, 0.95),
        "p99_ms": benchlib.pct_ms(s, 0.99),
        "max_ms": round(s[-1] * 1e3, 2) if s else None,
        "mean_ms": round(sum(s) / len(s) * 1e3, 2) if s else None,
        "matches_per_page_avg": round(sum(entries) / len(entries), 1) if entries else None,
        "loadavg_before": la,
        "client_cpu_s": round(client, 2),
        "server_cpu_s": round(server, 2) if server_pid else None,
        "pg_cpu_s": round(pg_cpu, 2) if pg.db else None,
        "machine_busy_cpu_s": round(machine, 2),
    }
    if server_pid and pg.db:
        out["other_cpu_s"] = round(machine - client - server - pg_cpu, 2)
        out["server_ms_per_req"] = round(server / max(1, len(s)) * 1e3, 3)
        out["pg_ms_per_req"] = round(pg_cpu / max(1, len(s)) * 1e3, 3)
    if errors:
        out["first_error"] = errors[0]
    return out


# ------------------------------------------------------------------------------------------------
# SQL capture and EXPLAIN
# ------------------------------------------------------------------------------------------------
_LOG_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_DURATION = re.compile(
    r"LOG:  duration: ([\d.]+) ms  (?:execute ([^:]+)|statement|parse ([^:]+)|bind ([^:]+)): (.*)$", re.S
)


def _log_records(text: str, db: str) -> list[str]:
    """Log records of database ``db``; a ``DETAIL:`` record (its own line, same pid) is appended to the
    record before it, so a statement and its parameters come as one string."""
    recs: list[list] = []  # [pid, text]
    last_by_pid: dict[str, list] = {}
    for line in text.splitlines():
        if _LOG_START.match(line):
            m = re.match(r"^\S+ \S+ \S+ \[(\d+)\] (\S*) ?(\w+):  ", line)
            pid = m.group(1) if m else ""
            if m and m.group(3) == "DETAIL" and pid in last_by_pid:
                last_by_pid[pid][1] += "\nDETAIL:" + line.split("DETAIL:", 1)[1]
                continue
            rec = [pid, line]
            recs.append(rec)
            last_by_pid[pid] = rec
        elif recs:
            recs[-1][1] += "\n" + line.lstrip("\t")
    return [r[1] for r in recs if f"@{db} " in r[1]]


def _parse_params(detail: str) -> dict[int, str]:
    """``DETAIL:  parameters: $1 = 'a', $2 = NULL`` → {1: "'a'", 2: "NULL"}."""
    out: dict[int, str] = {}
    for m in re.finditer(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", detail):
        out[int(m.group(1))] = m.group(2)
    return out


def capture_sql(base: str, db: str, path: str, repeats: int = 3) -> list[dict[str, Any]]:
    """Run ``path`` ``repeats`` times with statement logging on; return the statements of the last run."""
    import psycopg

    off = PG_LOG.stat().st_size
    with psycopg.connect(benchlib.PG_ADMIN_DSN, autocommit=True) as c:
        c.execute("ALTER SYSTEM SET log_min_duration_statement = 0")
        c.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        try:
            h = benchlib.Http(base)
            marks = []
            for _ in range(repeats):
                # a marker statement between runs, so the last run's statements can be told apart
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}", autocommit=True) as m:
                    m.execute("SELECT 'search_bench_marker'")
                st, _, _ = h.req("GET", path)
                marks.append(st)
            h.close()
            time.sleep(0.3)
        finally:
            c.execute("ALTER SYSTEM RESET log_min_duration_statement")
            c.execute("SELECT pg_reload_conf()")
    with open(PG_LOG, errors="replace") as f:
        f.seek(off)
        text = f.read()
    recs = _log_records(text, db)
    last_marker = max((k for k, r in enumerate(recs) if "search_bench_marker" in r), default=-1)
    out: list[dict[str, Any]] = []
    for r in recs[last_marker + 1 :]:
        head, _, detail = r.partition("\nDETAIL:")
        m = _DURATION.search(head)
        if not m or m.group(3) or m.group(4):  # skip parse/bind records (the execute record has the total)
            continue
        sql = m.group(5).strip()
        if sql.upper().startswith(("BEGIN", "COMMIT", "SET ", "SHOW ", "SELECT 'SEARCH_BENCH")):
            continue
        out.append(
            {
                "duration_ms": float(m.group(1)),
                "prepared": bool(m.group(2)) and m.group(2).strip() != "<unnamed>",
                "statement_name": (m.group(2) or "").strip(),
                "sql": sql,
                "params": _parse_params(detail),
            }
        )
    return out


def explain(db: str, stmt: dict[str, Any]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement: literal parameters (a custom plan) unless the
    server ran it as a prepared statement, then a forced generic plan of the same prepared statement."""
    import psycopg

    sql, params = stmt["sql"], stmt["params"]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}", autocommit=True) as c:
        if stmt["prepared"] and params:
            c.execute("SET plan_cache_mode = force_generic_plan")
            c.execute(f"PREPARE bench_q AS {sql}")
            args = ", ".join(params[k] for k in sorted(params))
            rows = c.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_q({args})").fetchall()
            c.execute("DEALLOCATE bench_q")
        else:
            lit = sql
            for k in sorted(params, reverse=True):  # $12 before $1
                lit = lit.replace(f"${k}", params[k])
            rows = c.execute(f"EXPLAIN (ANALYZE, BUFFERS) {lit}").fetchall()
    return "\n".join(r[0] for r in rows)


# ------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", help="FHIR base of a running server (else one is started on --db)")
    ap.add_argument("--db", help="the database (cares_search_*) the server uses: CPU accounting, SQL capture, EXPLAIN")
    ap.add_argument("--server-pid", type=int, help="pid of the server process (CPU accounting)")
    ap.add_argument("--port", type=int, default=8305, help="port of the server this script starts (no --base)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--only", help="comma-separated query names (default: all): " + ", ".join(QUERIES))
    ap.add_argument("--explain-top", type=int, default=4, help="capture SQL + EXPLAIN of the N slowest (p95)")
    ap.add_argument("--label", default=None)
    a = ap.parse_args()
    if not a.base and not a.db:
        ap.error("give --base (a running server) and/or --db")

    proc = None
    base = a.base
    server_pid = a.server_pid
    if not base:
        log = benchlib.out_dir() / f"search-server-{a.db}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.log"
        proc = benchlib.start_ours(benchlib.pg_url(a.db), a.port, log)
        base, server_pid = f"http://127.0.0.1:{a.port}/fhir", proc.pid
    pg = PgBackends(a.db, server_pid)
    try:
        return _bench(a, base, server_pid, pg)
    finally:
        if proc is not None:
            benchlib.stop_process(proc)


def _bench(a: argparse.Namespace, base: str, server_pid: int | None, pg: PgBackends) -> int:
    h = benchlib.Http(base)
    st, _, body = h.req("GET", "Patient?_summary=count")
    n_children = _bundle(body).get("total") or 0
    st, _, body = h.req("GET", "Observation?_summary=count")
    n_obs = _bundle(body).get("total")
    h.close()
    if not n_children:
        raise SystemExit("no Patients: load bench/search_data.py data first")
    if a.db:
        with pg.conn.cursor() as cur:  # type: ignore[union-attr]
            n_res = cur.execute("SELECT count(*) FROM resource WHERE NOT deleted").fetchone()[0]
    else:
        n_res = None
    names = a.only.split(",") if a.only else list(QUERIES)
    benchlib.eprint(
        f"{base}: {n_children} Patients, {n_obs} Observations, {n_res} resources; "
        f"{a.requests} requests per query at concurrency {a.concurrency}"
    )
    results: dict[str, Any] = {}
    for name in names:
        desc, fn = QUERIES[name]
        rng = random.Random(f"search-bench-{name}")
        if fn is None:  # page N of a large result
            url, page, walk_s = walk_to_page(base, PAGE_WALKS[name], a.page)
            paths = [url] * a.requests
            warm = [url] * a.warmup
            extra = {"page_reached": page, "walk_s": round(walk_s, 1), "url": url.split("/fhir/", 1)[-1]}
        else:
            paths = [fn(rng, n_children) for _ in range(a.requests)]
            warm = [fn(rng, n_children) for _ in range(a.warmup)]
            extra = {"example": paths[0]}
        hp = benchlib.Http(base)
        st, _, body = hp.req("GET", paths[0])
        hp.close()
        if st != 200:
            b = _bundle(body)
            issue = (b.get("issue") or [{}])[0]
            results[name] = {
                "query": desc,
                "status": st,
                "not_supported": issue.get("code") == "not-supported",
                "diagnostics": issue.get("diagnostics", body[:300].decode(errors="replace")),
                **extra,
            }
            benchlib.eprint(f"  {name:24s} → {st} {issue.get('code')}: {issue.get('diagnostics', '')[:120]}")
            continue
        r = run_query(base, paths, warm, a.concurrency, server_pid, pg)
        results[name] = {"query": desc, "status": 200, **extra, **r}
        benchlib.eprint(
            f"  {name:24s} p50 {r['p50_ms']:>8} p95 {r['p95_ms']:>8} ms  {r['rps']:>7}/s  "
            f"matches/page {r['matches_per_page_avg']}  other_cpu {r.get('other_cpu_s')}  "
            f"loadavg {r['loadavg_before'][0]}"
        )

    explained: dict[str, Any] = {}
    if a.db and a.explain_top:
        timed = [(v["p95_ms"], k) for k, v in results.items() if v.get("status") == 200 and v.get("p95_ms") is not None]
        timed.sort(reverse=True)
        pick = [k for p, k in timed[: a.explain_top]] + [k for p, k in timed if p >= TARGET_P95_MS]
        for name in dict.fromkeys(pick):
            path = results[name].get("url") or results[name]["example"]
            try:
                stmts = capture_sql(base, a.db, path)
                for s in stmts:
                    s["explain"] = explain(a.db, s)
                explained[name] = {"path": path, "statements": stmts}
                benchlib.eprint(f"  captured {len(stmts)} statement(s) of {name}")
            except Exception as e:  # noqa: BLE001
                explained[name] = {"path": path, "error": f"{type(e).__name__}: {e}"}
                benchlib.eprint(f"  capture of {name} failed: {e}")

    report = {
        "base": base,
        "db": a.db,
        "label": a.label,
        "children": n_children,
        "observations": n_obs,
        "resources": n_res,
        "requests": a.requests,
        "concurrency": a.concurrency,
        "warmup": a.warmup,
        "target_p95_ms": TARGET_P95_MS,
        "results": results,
        "explain": explained,
        "machine": benchlib.machine_info(),
        "finished": benchlib.now_utc(),
    }
    path = benchlib.out_dir() / f"search-bench-{a.db or 'base'}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=1))
    print(
        f"\n{n_res or '?'} resources ({n_children} children), {a.requests} requests/query, "
        f"concurrency {a.concurrency}\n"
    )
    print(
        "| query | p50 ms | p95 ms | p99 ms | req/s | matches/page | server ms/req | pg ms/req | other_cpu_s "
        "| p95 < 50 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for _name, v in results.items():
        if v.get("status") != 200:
            what = "not supported yet" if v.get("not_supported") else f"HTTP {v.get('status')}"
            print(f"| {v['query']} | | | | | | | | | {what} |")
            continue
        q = v["query"] + (f" (page {v['page_reached']})" if "page_reached" in v else "")
        ok = "MET" if v["p95_ms"] < TARGET_P95_MS else "**NOT MET**"
        print(
            f"| {q} | {v['p50_ms']} | {v['p95_ms']} | {v['p99_ms']} | {v['rps']} | {v['matches_per_page_avg']} | "
            f"{v.get('server_ms_per_req', '')} | {v.get('pg_ms_per_req', '')} | {v.get('other_cpu_s', '')} | {ok} |"
        )
    for name, e in explained.items():
        print(f"\n### {name}: {e['path']}")
        if "error" in e:
            print(e["error"])
            continue
        for s in e["statements"]:
            print(
                f"\n-- {s['duration_ms']} ms{' (prepared)' if s['prepared'] else ''}: {s['sql']}"
                f"\n-- params {s['params']}"
            )
            print(s["explain"])
    print(f"\n{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
