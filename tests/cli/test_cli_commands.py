"""The cares-fhir command: serve --demo on an empty database, load Bundles and NDJSON, db upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from tests.conftest import EXAMPLES, _free_port

CLI = [sys.executable, "-m", "fhir_server"]


def _serve(url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--database-url", url, "--no-auth", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/metadata", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _total(base: str, rtype: str, **params: str) -> int:
    r = httpx.get(f"{base}/{rtype}", params={**params, "_summary": "count"}, timeout=30)
    return r.json()["total"]


def test_serve_demo_loads_demo_data_once(fresh_db_url):
    proc, base = _serve(fresh_db_url, "--demo")
    try:
        patients = _total(base, "Patient")
        assert patients >= 4
        assert _total(base, "CarePlan") >= 8  # an ICP and an emergency plan per child
        assert _total(base, "Task") >= 4
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Authorization is OFF" in out
    assert "Ramos" not in out  # no resource content in the log
    proc, base = _serve(fresh_db_url, "--demo")  # not loaded twice
    try:
        assert _total(base, "Patient") == patients
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_load_bundles_and_ndjson(fresh_db_url, tmp_path):
    ndjson = tmp_path / "patients.ndjson"
    lines = [{"resourceType": "Patient", "id": f"nd-{i}", "gender": "female"} for i in range(25)]
    lines += [{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "subject": {"reference": "Patient/nd-1"}}]
    ndjson.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Practitioner", "id": "coll-1"}}]}))
    synthea = sorted((EXAMPLES / "synthea").glob("*.json"))[0]
    env = {**os.environ, "CARES_FHIR_DATABASE_URL": fresh_db_url}
    done = subprocess.run([*CLI, "load", str(ndjson), str(collection), str(synthea)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "errors" in done.stderr and "0 errors" in done.stderr
    again = subprocess.run([*CLI, "load", "--quiet", str(ndjson)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0
    if fresh_db_url.startswith("postgresql"):  # the loader leaves statistics and a visibility map behind
        import psycopg

        with psycopg.connect(fresh_db_url.replace("+psycopg", "")) as c:
            row = c.execute("SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables"
                            " WHERE relname = 'resource'").fetchone()
        assert row == (True, True)
    proc, base = _serve(fresh_db_url)
    try:
        assert _total(base, "Patient", gender="female") == 25
        assert httpx.get(f"{base}/Patient/nd-3").json()["meta"]["versionId"] == "2"  # loaded twice: PUT
        assert httpx.get(f"{base}/Practitioner/coll-1").status_code == 200
        synthea_patients = _total(base, "Patient") - 25
        assert synthea_patients == 1
        assert _total(base, "Observation") > 1
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": "never"},
         "request": {"method": "POST", "url": "Patient"}}]}))
    failed = subprocess.run([*CLI, "load", "--quiet", str(bad)], env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "1 errors" in failed.stderr
