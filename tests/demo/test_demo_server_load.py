"""The demo Bundles load into the server: as transactions over HTTP, and through ``load_demo_if_empty``."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from fhir_server.config import Settings
from fhir_server.demo import SHARED_BUNDLE, load_bundles
from fhir_server.interactions.services import Services
from fhir_server.storage import migrate

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SID_MEMBER = "http://cares-fhir.org/fhir/sid/masshealth-member-id"
CAREPLAN_CATEGORY = "http://cares-fhir.org/fhir/CodeSystem/careplan-category"


def _relative(location: str) -> str:
    """``[base/]Type/id[/_history/n]`` -> ``Type/id``."""
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _post_all(fhir) -> dict[str, dict]:
    out = {}
    for name, bundle in load_bundles():
        r = fhir.post("", json=bundle, headers=FHIR_JSON)
        assert r.status_code == 200, (name, r.text[:2000])
        body = r.json()
        assert body["type"] == "transaction-response"
        assert len(body["entry"]) == len(bundle["entry"])
        assert all(e["response"]["status"][:3] in ("200", "201") for e in body["entry"]), name
        out[name] = body
    return out


def test_demo_bundles_load_over_http_and_references_resolve(fhir):
    responses = _post_all(fhir)
    for name, bundle in load_bundles():
        if name == SHARED_BUNDLE:
            continue
        locations = [_relative(e["response"]["location"]) for e in responses[name]["entry"]]
        resources = [e["resource"] for e in bundle["entry"]]
        task = fhir.get(locations[[r["resourceType"] for r in resources].index("Task")]).json()
        for ref in (task["focus"]["reference"], task["for"]["reference"], task["owner"]["reference"]):
            assert not ref.startswith("urn:"), ref
            assert fhir.get(ref).status_code == 200, ref
        (i,) = [i for i, r in enumerate(resources) if r["resourceType"] == "CarePlan"
                and r["category"][0]["coding"][0]["code"] == "emergency-plan"]
        plan = fhir.get(locations[i]).json()
        icp = fhir.get(plan["partOf"][0]["reference"]).json()
        assert icp["category"][0]["coding"][0]["code"] == "icp"
        assert all(fhir.get(g["reference"]).status_code == 200 for g in icp["goal"])

    member = next(b for n, b in load_bundles() if n != SHARED_BUNDLE)["entry"][0]["resource"]["identifier"][0]
    found = fhir.get("Patient", params={"identifier": f"{SID_MEMBER}|{member['value']}"}).json()
    assert len(found.get("entry", [])) == 1
    icps = fhir.get("CarePlan", params={"category": f"{CAREPLAN_CATEGORY}|icp", "_count": "50"}).json()
    assert len(icps.get("entry", [])) >= 5


def test_demo_patient_conditional_create_does_not_duplicate(fhir):
    _post_all(fhir)
    child = next(b for n, b in load_bundles() if n != SHARED_BUNDLE)
    patient_only = {"resourceType": "Bundle", "type": "transaction", "entry": [child["entry"][0]]}
    r = fhir.post("", json=patient_only, headers=FHIR_JSON)
    assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"].startswith("200")
    value = child["entry"][0]["resource"]["identifier"][0]["value"]
    found = fhir.get("Patient", params={"identifier": f"{SID_MEMBER}|{value}"}).json()
    assert len(found.get("entry", [])) == 1


def test_demo_load_demo_if_empty(tmp_path):
    from fhir_server.demo import load_demo_if_empty

    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    migrate.upgrade(url)
    svc = Services.create(Settings(database_url=url))

    async def run() -> tuple[int, int, int]:
        await svc.db.open()
        try:
            first = await load_demo_if_empty(svc)
            second = await load_demo_if_empty(svc)
            async with svc.db.read() as c:
                (count,) = await c.one("SELECT COUNT(*) FROM resource")
            return first, second, count
        finally:
            await svc.db.close()

    first, second, count = asyncio.run(run())
    bundles = load_bundles()
    assert first == len(bundles) and second == 0
    assert count == sum(len(b["entry"]) for _, b in bundles)


def _loaded(fhir) -> list[tuple[str, str, dict, str]]:
    """Post every bundle; ``(file name, fullUrl, resource as posted, Type/id on the server)`` per child entry."""
    responses = _post_all(fhir)
    out = []
    for name, bundle in load_bundles():
        if name == SHARED_BUNDLE:
            continue
        for entry, answer in zip(bundle["entry"], responses[name]["entry"], strict=True):
            out.append((name, entry["fullUrl"], entry["resource"], _relative(answer["response"]["location"])))
    return out


def test_demo_profiled_resources_validate_without_errors(fhir):
    """Every demo resource that claims a CARES profile (the children's and the CARES staff PractitionerRoles of the
    shared bundle) is stored claiming it and ``$validate`` (base R4 + its profiles, reference targets resolved on the
    server) reports no error – on both backends."""
    checked = Counter()
    shared = [(SHARED_BUNDLE, None, e["resource"], e["request"]["url"]) for n, b in load_bundles()
              if n == SHARED_BUNDLE for e in b["entry"]]
    for name, _, resource, location in [*shared, *_loaded(fhir)]:
        claimed = resource["meta"].get("profile", [])
        if not claimed:
            continue
        stored = fhir.get(location).json()
        assert stored["meta"]["profile"] == claimed, (name, location)
        r = fhir.get(f"{location}/$validate")
        assert r.status_code == 200, r.text[:500]
        errors = [i for i in r.json()["issue"] if i["severity"] in ("error", "fatal")]
        assert not errors, (name, location, errors)
        if claimed[0].endswith("/cares-icp"):  # on time: within 60 days of its enrollment's referral (Appendix M §VIII)
            assert "cares-icp-6" not in r.text, (name, location)
            enrollment = fhir.get(next(e["valueReference"]["reference"] for e in stored["extension"]
                                       if e["url"].endswith("/cares-ext-icp-enrollment"))).json()
            assert enrollment["patient"] == stored["subject"], (name, location)
        checked[claimed[0].rsplit("/", 1)[1]] += 1
    assert set(checked) == {"cares-patient", "cares-relatedperson", "cares-careteam", "cares-goal", "cares-icp",
                            "cares-emergency-plan", "cares-icp-health-summary", "cares-referral",
                            "cares-followup-task", "cares-enrollment", "cares-consent-roi", "cares-letter-enrollment",
                            "cares-communication-ccm-notification", "cares-icp-shared", "cares-staff"}, checked
    assert checked["cares-icp"] == checked["cares-emergency-plan"] == checked["cares-patient"] >= 5
    assert checked["cares-enrollment"] == checked["cares-consent-roi"] == checked["cares-letter-enrollment"] == \
        checked["cares-patient"]
    assert checked["cares-staff"] == 8 and checked["cares-communication-ccm-notification"] == 1
    assert checked["cares-icp-shared"] == 1


def test_demo_profile_rules_apply_to_undeclared_resources(fhir):
    """profiles/data/profile-rules.json: a follow-up Task that does not declare cares-followup-task is held to it
    by its code (Appendix M §VI.D.2) – completed without the two answers it is rejected, with them it is stored."""
    loaded = _loaded(fhir)
    urls = {full_url: location for _, full_url, _, location in loaded}
    task = next(res for _, _, res, _ in loaded if res["resourceType"] == "Task" and res["status"] == "completed")
    body = json.loads(json.dumps(task))
    for key in ("focus", "for"):
        body[key]["reference"] = urls[body[key]["reference"]]
    body["meta"] = {"tag": body["meta"]["tag"]}
    answers = body.pop("output")
    r = fhir.post("Task", json=body, headers=FHIR_JSON)
    assert r.status_code == 422, r.text[:500]
    assert "cares-fu-2" in r.text
    r = fhir.post("Task", json={**body, "output": answers}, headers=FHIR_JSON)
    assert r.status_code == 201, r.text[:500]
    stored = r.json() if r.content else fhir.get(_relative(r.headers["Location"])).json()
    assert "profile" not in stored.get("meta", {})
