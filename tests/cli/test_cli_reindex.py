"""Custom SearchParameters across restarts, ``cares-fhir reindex`` (offline, with a progress bar) and
system-level ``$reindex``, on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import subprocess

import httpx

from fhir_server.interactions import conformance
from tests.cli.test_cli_commands import CLI, _serve

FHIR_JSON = {"Content-Type": "application/fhir+json"}
CAT = "http://cares.example.org/CodeSystem/careplan-category"
CODE = "cares-category"
SP = {"resourceType": "SearchParameter", "url": "http://cares.example.org/fhir/SearchParameter/cares-category",
      "name": "CaresCategory", "status": "active", "description": "CARES care plan category",
      "code": CODE, "base": ["CarePlan"], "type": "token", "expression": "CarePlan.category"}


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def _create(base: str, resource: dict) -> str:
    r = httpx.post(f"{base}/{resource['resourceType']}", json=resource, headers=FHIR_JSON, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _careplan(code: str) -> dict:
    return {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": CAT, "code": code}]}]}


def _search(base: str, value: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{base}/CarePlan", params={CODE: value}, headers=headers, timeout=30)


def _matches(base: str, value: str) -> list[str]:
    r = _search(base, value)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match")


def _reindex(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "reindex", "--database-url", url, *args], capture_output=True, text=True,
                          timeout=300)


def test_custom_param_survives_restart_and_cli_reindex(fresh_db_url):
    proc, base = _serve(fresh_db_url)
    try:
        old = [_create(base, _careplan("icp")) for _ in range(3)]
        sid = _create(base, SP)
        new = _create(base, _careplan("icp"))
        _create(base, _careplan("emergency"))
        assert _matches(base, f"{CAT}|icp") == [new]
    finally:
        _stop(proc)

    done = _reindex(fresh_db_url, "--type", "CarePlan", "--batch", "2")  # several batches
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reindexed 5 CarePlan resources" in done.stderr
    assert "5/5" in done.stderr  # the tqdm progress bar

    proc, base = _serve(fresh_db_url)
    try:
        assert _matches(base, f"{CAT}|icp") == sorted([*old, new])  # loaded at start, old ones reindexed
        cs = httpx.get(f"{base}/metadata", timeout=30).json()
        careplan = next(r for r in cs["rest"][0]["resource"] if r["type"] == "CarePlan")
        assert {"name": CODE, "type": "token", "definition": SP["url"]} in careplan["searchParam"]
        r = httpx.post(f"{base}/$reindex", timeout=120)  # system level: every type
        assert r.status_code == 200, r.text
        # 5 CarePlans + the SearchParameter + the conformance resources the guide ships (stored at start)
        shipped = len(conformance.shipped_resources())
        assert r.json()["issue"][0]["diagnostics"] == f"Reindexed {6 + shipped} resource(s)"
        assert _matches(base, f"{CAT}|icp") == sorted([*old, new])
        assert httpx.delete(f"{base}/SearchParameter/{sid}", timeout=30).status_code == 204
    finally:
        _stop(proc)

    done = _reindex(fresh_db_url, "--quiet")
    shipped = len(conformance.shipped_resources())  # the SearchParameter was deleted: 5 CarePlans + the guide
    assert done.returncode == 0 and f"reindexed {5 + shipped} resources" in done.stderr and "res/s" not in done.stderr
    proc, base = _serve(fresh_db_url)
    try:  # deleted: not loaded again
        strict = _search(base, f"{CAT}|icp", Prefer="handling=strict")
        assert strict.status_code == 400 and CODE in strict.text
    finally:
        _stop(proc)


def test_reindex_rejects_bad_arguments(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    bad = _reindex(url, "--type", "NoSuchType")
    assert bad.returncode == 2 and "unknown resource type" in bad.stderr
    assert _reindex(url, "--batch", "0").returncode == 2
    empty = _reindex(url)
    assert empty.returncode == 0 and "reindexed 0 resources" in empty.stderr
