"""No lost updates: concurrent If-Match updates and concurrent conditional creates, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx

FHIR_JSON = {"Content-Type": "application/fhir+json"}


async def _gather(base: str, n: int, make):  # noqa: ANN001, ANN202
    async with httpx.AsyncClient(base_url=base + "/", timeout=60,
                                 limits=httpx.Limits(max_connections=n)) as c:
        return await asyncio.gather(*[make(c, i) for i in range(n)])


def test_concurrent_if_match_updates_exactly_one_wins(fhir, server, tag):
    pid = fhir.post("Task", json={"resourceType": "Task", "status": "requested", "intent": "order"},
                    headers=FHIR_JSON).json()["id"]
    for round_ in range(5):
        version = fhir.get(f"Task/{pid}").json()["meta"]["versionId"]

        async def put(c, i, round_=round_, version=version):  # noqa: ANN001, ANN202
            body = {"resourceType": "Task", "id": pid, "status": "in-progress", "intent": "order",
                    "description": f"writer {i} round {round_}"}
            return await c.put(f"Task/{pid}", json=body, headers={**FHIR_JSON, "If-Match": f'W/"{version}"'})

        results = asyncio.run(_gather(server.base, 6, put))
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) == 1, codes
        assert all(c in (409, 412) for c in codes if c != 200), codes
    history = fhir.get(f"Task/{pid}/_history", params={"_count": "100"}).json()
    versions = [int(e["resource"]["meta"]["versionId"]) for e in history["entry"]]
    assert versions == list(range(6, 0, -1))  # gap-free, strictly increasing


def test_concurrent_unconditional_updates_keep_versions_gap_free(fhir, server, tag):
    pid = fhir.post("Task", json={"resourceType": "Task", "status": "requested", "intent": "order"},
                    headers=FHIR_JSON).json()["id"]

    async def put(c, i):  # noqa: ANN001, ANN202
        body = {"resourceType": "Task", "id": pid, "status": "requested", "intent": "order", "description": str(i)}
        return await c.put(f"Task/{pid}", json=body, headers=FHIR_JSON)

    results = asyncio.run(_gather(server.base, 10, put))
    assert sorted(r.status_code for r in results) == [200] * 10
    assert sorted(int(r.json()["meta"]["versionId"]) for r in results) == list(range(2, 12))


def test_ten_concurrent_conditional_creates_make_one(fhir, server, tag):
    async def create(c, i):  # noqa: ANN001, ANN202
        return await c.post("Patient", json={"resourceType": "Patient", "identifier": [
            {"system": "urn:test:mrn", "value": tag}]},
            headers={**FHIR_JSON, "If-None-Exist": f"identifier=urn:test:mrn|{tag}"})

    results = asyncio.run(_gather(server.base, 10, create))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 9 + [201], codes
    assert len({r.json()["id"] for r in results}) == 1
    found = fhir.get("Patient", params={"identifier": f"urn:test:mrn|{tag}"}).json()
    assert len(found["entry"]) == 1


def test_concurrent_creates_with_same_client_id(fhir, server, tag):
    async def put(c, i):  # noqa: ANN001, ANN202
        return await c.put(f"Patient/same-{tag}", json={"resourceType": "Patient", "id": f"same-{tag}"})

    results = asyncio.run(_gather(server.base, 8, put))
    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert sorted(int(r.json()["meta"]["versionId"]) for r in results) == list(range(1, 9))
