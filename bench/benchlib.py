"""Helpers shared by the bench scripts: paths, fresh databases, starting/stopping a server, a tiny HTTP driver.

Standard library + psycopg only (both in the project venv), so every script runs with ``.venv/bin/python``.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
CARES_FHIR = REPO / ".venv" / "bin" / "cares-fhir"
LOAD_VENV = BENCH / ".venv-load"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_url(db: str) -> str:
    """SQLAlchemy-style URL the server takes for database ``db`` on the local PostgreSQL."""
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


def shared_bench() -> Path:
    """The shared workload driver directory: $CARES_SHARED_BENCH or ../shared/bench next to the repo."""
    p = Path(os.environ.get("CARES_SHARED_BENCH") or (REPO.parent / "shared" / "bench")).resolve()
    if not (p / "fhirload.py").is_file():
        raise SystemExit(f"fhirload.py not found in {p}: set CARES_SHARED_BENCH to the shared bench directory")
    return p


def load_python() -> Path:
    """Python of the load-driver venv (bench/.venv-load, built from the shared requirements.txt)."""
    py = LOAD_VENV / "bin" / "python"
    if not py.exists():
        req = shared_bench() / "requirements.txt"
        raise SystemExit(f"{py} missing; create it with:\n  python3 -m venv {LOAD_VENV} && "
                         f"{LOAD_VENV}/bin/pip install -r {req}")
    return py


def out_dir() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT


def recreate_pg_db(name: str) -> None:
    """DROP (forcing other sessions off) and CREATE database ``name``."""
    import psycopg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad database name {name!r}")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')


def reset_database(url: str) -> None:
    """Make ``url`` (sqlite:///file or postgresql+psycopg://.../db) an empty database."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    elif url.startswith("postgresql"):
        u = urlsplit(url)
        if u.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"refusing to reset a non-local database: {url}")
        recreate_pg_db(u.path.lstrip("/"))
    else:
        raise SystemExit(f"unsupported database URL {url}")


def analyze(url: str) -> None:
    """Run ANALYZE on the database behind ``url`` (planner statistics, as autovacuum would)."""
    if url.startswith("sqlite:///"):
        import sqlite3

        c = sqlite3.connect(url[len("sqlite:///"):], timeout=60)
        try:
            c.execute("ANALYZE")
            c.commit()
        finally:
            c.close()
        return
    import psycopg

    u = urlsplit(url)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{u.path.lstrip('/')}", autocommit=True) as c:
        c.execute("ANALYZE")


def pg_setting(name: str) -> str | None:
    """SHOW ``name`` on the local PostgreSQL (None when it does not answer)."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as c:
            return c.execute(f"SHOW {name}").fetchone()[0]
    except psycopg.Error:
        return None


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200 (fail early when ``proc`` died)."""
    t_end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < t_end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = str(e)
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s ({last})")


def start_process(cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.Popen:
    """Start a server process in its own process group; stdout+stderr go to ``log_path``."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    log = open(log_path, "w")  # noqa: SIM115  (closed by stop_process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                            start_new_session=True)
    proc._bench_log = log  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT the process (uvicorn shuts down cleanly), then SIGKILL its group if it lingers."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    log = getattr(proc, "_bench_log", None)
    if log is not None:
        log.close()


def start_ours(database_url: str, port: int, log_path: Path, source: Path | None = None) -> subprocess.Popen:
    """Start ``cares-fhir serve`` (one process) and wait for /fhir/metadata. ``source``: run the server
    code of another checkout (e.g. a ``git worktree`` of an older commit) with this venv's packages."""
    if not CARES_FHIR.exists():
        raise SystemExit(f"{CARES_FHIR} missing: run `make install` in {REPO}")
    # benchmarks measure the open server (--no-auth; via the environment, which older checkouts ignore)
    env = {"CARES_FHIR_LOG_LEVEL": "warning", "CARES_FHIR_NO_AUTH": "true"}
    cmd = [str(CARES_FHIR)]
    if source is not None:
        env["PYTHONPATH"] = str(source)
        cmd = [str(CARES_FHIR.parent / "python"), "-m", "fhir_server"]
    proc = start_process([*cmd, "serve", "--database-url", database_url, "--port", str(port)],
                         log_path, env=env, cwd=source or REPO)
    try:
        wait_http(f"http://127.0.0.1:{port}/fhir/metadata", proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def log_errors(log_path: Path, limit: int = 20) -> list[str]:
    """The first lines of a server log that look like errors/tracebacks."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keys = ("error", "exception", "traceback", "critical")
    return [ln for ln in lines if any(k in ln.lower() for k in keys)][:limit]


def machine_info() -> dict[str, Any]:
    cpu = "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "platform": platform.platform()}


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------------
# Minimal HTTP (http.client keep-alive; one connection per thread)
# --------------------------------------------------------------------------------------------------
class Http:
    """One keep-alive HTTP/1.1 connection to a FHIR base; ``req`` returns (status, headers, body bytes)."""

    def __init__(self, base: str, timeout: float = 120.0) -> None:
        u = urlsplit(base)
        if u.scheme != "http":
            raise SystemExit("only http:// bases are supported")
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def path(self, url_or_path: str) -> str:
        """Absolute URL or base-relative path → request path."""
        if url_or_path.startswith("http"):
            u = urlsplit(url_or_path)
            return u.path + (f"?{u.query}" if u.query else "")
        return self.prefix + "/" + url_or_path.lstrip("/") if url_or_path else self.prefix

    def req(self, method: str, url_or_path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Accept": "application/fhir+json"}
        if body is not None and not isinstance(body, bytes | bytearray):
            body = json.dumps(body, separators=(",", ":")).encode()
        if body is not None:
            hdrs["Content-Type"] = "application/fhir+json"
        hdrs.update(headers or {})
        p = self.path(url_or_path)
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, p, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def pct_ms(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    k = min(len(sorted_s) - 1, max(0, int(round(q * (len(sorted_s) - 1)))))
    return round(sorted_s[k] * 1e3, 2)


def proc_cpu_s(pid: int) -> float:
    """utime+stime of one process in seconds (0 if gone)."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs)."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(vals) - vals[3] - (vals[4] if len(vals) > 4 else 0)) / os.sysconf("SC_CLK_TCK")


def timed_loop(base: str, op: Callable[[Http, int], bool], duration: float, concurrency: int = 1,
               warmup: float = 1.0, server_pid: int | None = None) -> dict[str, Any]:
    """Run ``op(http, i)`` (True = success) in ``concurrency`` threads for ``duration`` s after ``warmup``.

    Returns n, errors, rps, p50/p95/p99 ms of one call of ``op``, and the CPU seconds used meanwhile by
    this client, the server (``server_pid``) and the whole machine (includes PostgreSQL and other load).
    """
    t_start = time.monotonic() + warmup
    t_end = t_start + duration
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errs = [0] * concurrency
    first_err: list[str] = []

    def worker(w: int) -> None:
        h = Http(base)
        i = w
        try:
            while True:
                t0 = time.monotonic()
                if t0 >= t_end:
                    return
                try:
                    ok = op(h, i)
                except Exception as e:  # noqa: BLE001
                    ok = False
                    if not first_err:
                        first_err.append(f"{type(e).__name__}: {e}")
                t1 = time.monotonic()
                if t0 >= t_start:
                    if ok:
                        lat[w].append(t1 - t0)
                    else:
                        errs[w] += 1
                i += concurrency
        finally:
            h.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    while time.monotonic() < t_start:
        time.sleep(0.01)
    cpu0 = (time.process_time(), proc_cpu_s(server_pid) if server_pid else 0.0, machine_busy_s())
    for t in threads:
        t.join()
    cpu1 = (time.process_time(), proc_cpu_s(server_pid) if server_pid else 0.0, machine_busy_s())
    all_lat = sorted(x for part in lat for x in part)
    out = {"n": len(all_lat), "errors": sum(errs), "concurrency": concurrency, "duration_s": duration,
           "rps": round(len(all_lat) / duration, 1), "p50_ms": pct_ms(all_lat, .5),
           "p95_ms": pct_ms(all_lat, .95), "p99_ms": pct_ms(all_lat, .99),
           "client_cpu_s": round(cpu1[0] - cpu0[0], 2),
           "server_cpu_s": round(cpu1[1] - cpu0[1], 2) if server_pid else None,
           "machine_busy_cpu_s": round(cpu1[2] - cpu0[2], 2)}
    if first_err:
        out["first_error"] = first_err[0]
    return out


def eprint(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def add_server_args(ap: Any, *, default_db: str, sqlite_name: str, port: int) -> None:
    """The options of a script that either uses a running server (--base) or starts its own."""
    ap.add_argument("--base", default=None, help="FHIR base of a running server (else start one)")
    ap.add_argument("--database-url", default=None,
                    help=f"start our server on this database (default {pg_url(default_db)})")
    ap.add_argument("--sqlite", action="store_true", help=f"start our server on bench/out/{sqlite_name}")
    ap.add_argument("--keep-db", action="store_true", help="do not empty the database first")
    ap.add_argument("--port", type=int, default=port)
    ap.set_defaults(_default_db=default_db, _sqlite_name=sqlite_name)


def server_from_args(args: Any, log_prefix: str, stamp: str) -> tuple[str, str | None, subprocess.Popen | None]:
    """(FHIR base, database URL, server process) for options made by ``add_server_args``: the --base given,
    or our server started (on an emptied database unless --keep-db)."""
    if args.base is not None:
        return args.base, None, None
    url = args.database_url or (f"sqlite:///{out_dir() / args._sqlite_name}" if args.sqlite
                                else pg_url(args._default_db))
    if not args.keep_db:
        reset_database(url)
    log = out_dir() / f"{log_prefix}-server-{stamp}.log"
    eprint(f"== starting our server on {url} (log {log})")
    proc = start_ours(url, args.port, log)
    return f"http://127.0.0.1:{args.port}/fhir", url, proc

