"""Third-party examples round-trip, Synthea bundles load as transactions, fhirpy works unmodified."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from tests.conftest import EXAMPLES

FHIR_JSON = {"Content-Type": "application/fhir+json"}
EXAMPLE_FILES = sorted((EXAMPLES / "examples").glob("*.json"))
SYNTHEA_FILES = sorted((EXAMPLES / "synthea").glob("*.json"))


def _strip(resource: dict) -> dict:
    r = copy.deepcopy(resource)
    for k in ("id", "meta", "text"):
        r.pop(k, None)
    return r


def test_examples_present():
    assert len(EXAMPLE_FILES) > 50 and len(SYNTHEA_FILES) == 4


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_round_trips(fhir, path):
    resource = json.loads(path.read_text())
    rtype, rid = resource["resourceType"], resource["id"]
    r = fhir.put(f"{rtype}/{rid}", json=resource)
    assert r.status_code in (200, 201), r.text
    back = fhir.get(f"{rtype}/{rid}").json()
    assert _strip(back) == _strip(resource)
    created = fhir.post(rtype, json=resource, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    assert _strip(fhir.get(f"{rtype}/{created.json()['id']}").json()) == _strip(resource)


@pytest.mark.parametrize("path", SYNTHEA_FILES, ids=lambda p: p.stem.split("_")[0])
def test_synthea_bundle_loads_as_transaction(fhir, path):
    bundle = json.loads(path.read_text())
    r = fhir.post("", json=bundle, headers={**FHIR_JSON, "Prefer": "return=minimal"})
    assert r.status_code == 200, r.text[:2000]
    out = r.json()
    assert len(out["entry"]) == len(bundle["entry"])
    assert all(e["response"]["status"].startswith("201") for e in out["entry"])
    patient = next(e for e in out["entry"] if e["response"]["location"].startswith("Patient/"))
    pid = patient["response"]["location"].split("/")[1]
    checked = 0
    for rtype in ("CarePlan", "Goal", "Condition", "Procedure", "Encounter", "Observation"):
        expected = sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)
        if expected:
            found = fhir.get(rtype, params={"patient": f"Patient/{pid}", "_total": "accurate", "_count": "0"})
            assert found.json()["total"] == expected, rtype
            checked += 1
    assert checked >= 3


def test_fhirpy_client_against_live_server(server, tag):
    from fhirpy import AsyncFHIRClient

    async def scenario() -> None:
        client = AsyncFHIRClient(server.base, extra_headers={"Accept": "application/fhir+json"})
        patient = client.resource("Patient", identifier=[{"system": "urn:test:mrn", "value": tag}],
                                  name=[{"family": "Santos", "given": ["Luz"]}])
        await patient.save()
        assert patient.id and patient["meta"]["versionId"] == "1"
        patient["gender"] = "female"
        await patient.save()
        fetched = await client.reference("Patient", patient.id).to_resource()
        assert fetched["gender"] == "female" and fetched["meta"]["versionId"] == "2"
        found = await client.resources("Patient").search(identifier=f"urn:test:mrn|{tag}").fetch_all()
        assert [p.id for p in found] == [patient.id]
        plan = client.resource("CarePlan", status="active", intent="plan", subject=patient.to_reference())
        await plan.save()
        plans = await client.resources("CarePlan").search(subject=patient.to_reference().reference).fetch()
        assert [p.id for p in plans] == [plan.id]
        await plan.delete()
        assert await client.resources("CarePlan").search(subject=f"Patient/{patient.id}").count() == 0

    asyncio.run(scenario())
