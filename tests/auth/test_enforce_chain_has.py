"""Scopes on the resource types a chain or ``_has`` traverses (issue 7 §4): ``CarePlan?subject:Patient.name=x`` and
``Patient?_has:Observation:subject:code=y`` look at Patient and Observation resources, so the token needs a scope
allowing search on them (else 403 OperationOutcome naming the missing scope, audited); the patient compartment and
v2 query restrictions of a traversed type apply to the traversed resources. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.auth.enforce_data import Dataset, client, dataset, ids_in
from tests.conftest import LiveServer, mint


@pytest.fixture
def ds(auth_server: LiveServer) -> Dataset:
    return dataset(auth_server)


def _token(server: LiveServer, ds: Dataset, scope: str, **kw: Any) -> httpx.Client:
    return client(server, mint(server, scope, patient=ds.a.patient, **kw))


def _a_not_b(ds: Dataset, bundle: dict[str, Any], rtype: str) -> None:
    """Every ``rtype`` of child A found (other tests may add more of A's), none of child B's."""
    found = ids_in(bundle)
    assert {(rtype, i) for i in ds.a.ids[rtype]} <= found
    assert not found & set(ds.b.all())


def _forbidden(r: httpx.Response, scope: str) -> None:
    assert r.status_code == 403, r.text
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    text = " ".join(i.get("diagnostics", "") for i in oo["issue"])
    assert scope in text, text
    assert oo["issue"][0]["code"] == "forbidden"


def test_has_needs_a_scope_on_its_source_type(auth_server: LiveServer, ds: Dataset) -> None:
    with _token(auth_server, ds, "patient/Patient.rs patient/CarePlan.rs") as c:
        # without any Observation scope, _has cannot probe whether Observations exist
        for value in ("weight", "no-such-code"):
            _forbidden(c.get("Patient", params={"_has:Observation:subject:code:text": value}),
                       "patient/Observation.rs")
        _forbidden(c.get("Patient", params={"_has:CareTeam:subject:status": "active"}), "patient/CareTeam.rs")
    # a read-only (v2 .r) scope does not allow searching through the type either
    with _token(auth_server, ds, "patient/Patient.rs patient/Observation.r") as c:
        _forbidden(c.get("Patient", params={"_has:Observation:subject:code:text": "weight"}),
                   "patient/Observation.rs")
    with _token(auth_server, ds, "patient/Patient.rs patient/Observation.rs") as c:
        r = c.get("Patient", params={"_has:Observation:subject:code:text": "weight"})
        assert r.status_code == 200 and ids_in(r.json()) == {("Patient", ds.a.patient)}


def test_chain_needs_a_scope_on_its_target_type(auth_server: LiveServer, ds: Dataset) -> None:
    name_a = f"ChildA{ds.tag}"
    with _token(auth_server, ds, "patient/CarePlan.rs") as c:
        _forbidden(c.get("CarePlan", params={"subject:Patient.name": name_a}), "patient/Patient.rs")
        _forbidden(c.get("CarePlan", params={"care-team:CareTeam.status": "active"}), "patient/CareTeam.rs")
    with _token(auth_server, ds, "patient/CarePlan.rs patient/Patient.rs") as c:
        r = c.get("CarePlan", params={"subject:Patient.name": name_a})
        assert r.status_code == 200
        _a_not_b(ds, r.json(), "CarePlan")
    # user/ tokens likewise name a user/ scope
    with client(auth_server, mint(auth_server, "user/CarePlan.rs", fhir_user=f"Practitioner/{ds.a.practitioner}")) \
            as c:
        _forbidden(c.get("CarePlan", params={"subject:Patient.name": name_a}), "user/Patient.rs")


def test_untyped_chain_keeps_the_types_the_token_may_search(auth_server: LiveServer, ds: Dataset) -> None:
    """``Observation?subject.name=x`` may go to Patient or Location: with a Patient scope only, the Patient branch is
    searched; with neither, 403."""
    with _token(auth_server, ds, "patient/Observation.rs patient/Patient.rs") as c:
        r = c.get("Observation", params={"subject.name": f"ChildA{ds.tag}"})
        assert r.status_code == 200, r.text
        _a_not_b(ds, r.json(), "Observation")
    with _token(auth_server, ds, "patient/Observation.rs") as c:
        r = c.get("Observation", params={"subject.name": f"ChildA{ds.tag}"})
        assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"


def test_nested_traversals_are_checked(auth_server: LiveServer, ds: Dataset) -> None:
    key = "practitioner:Practitioner._has:CareTeam:participant:subject"
    params = {key: f"Patient/{ds.a.patient}"}
    with _token(auth_server, ds, "patient/PractitionerRole.rs patient/Practitioner.rs") as c:
        _forbidden(c.get("PractitionerRole", params=params), "patient/CareTeam.rs")
    with _token(auth_server, ds, "patient/PractitionerRole.rs patient/CareTeam.rs") as c:
        _forbidden(c.get("PractitionerRole", params=params), "patient/Practitioner.rs")
    with _token(auth_server, ds, "patient/PractitionerRole.rs patient/Practitioner.rs patient/CareTeam.rs") as c:
        r = c.get("PractitionerRole", params=params)
        assert r.status_code == 200 and ids_in(r.json()) == {("PractitionerRole", ds.a.role)}
        # B's CareTeam is outside the token's compartment: the nested _has does not match through it
        r = c.get("PractitionerRole", params={key: f"Patient/{ds.b.patient}"})
        assert r.status_code == 200 and not ids_in(r.json())


def test_traversed_resources_stay_in_the_compartment(auth_server: LiveServer, ds: Dataset) -> None:
    """A ``_has`` or chain on another child's resource does not match, even when the searched resource is visible."""
    b_obs = ds.b.ids["Observation"][0]
    with _token(auth_server, ds, "patient/*.rs") as c:
        r = c.get("Patient", params={"_has:Observation:subject:_id": b_obs})
        assert r.status_code == 200 and not ids_in(r.json())
        # A's Practitioner is shared (visible); B's CareTeam pointing at it is not
        r = c.get("Practitioner", params={"_id": ds.b.practitioner, "_has:CareTeam:participant:_id":
                                          ds.b.ids["CareTeam"][0]})
        assert r.status_code == 200 and not ids_in(r.json())
        r = c.get("Practitioner", params={"_id": ds.a.practitioner, "_has:CareTeam:participant:_id":
                                          ds.a.ids["CareTeam"][0]})
        assert ids_in(r.json()) == {("Practitioner", ds.a.practitioner)}
        r = c.get("Observation", params={"subject:Patient._id": ds.b.patient})
        assert r.status_code == 200 and not ids_in(r.json())
    with client(auth_server, mint(auth_server, "system/*.rs")) as admin:  # the same searches do match B's data
        r = admin.get("Patient", params={"_has:Observation:subject:_id": b_obs})
        assert ids_in(r.json()) == {("Patient", ds.b.patient)}
        r = admin.get("Observation", params={"subject:Patient._id": ds.b.patient})
        assert {("Observation", i) for i in ds.b.ids["Observation"]} <= ids_in(r.json())


def test_v2_query_restrictions_apply_to_traversed_resources(auth_server: LiveServer, ds: Dataset) -> None:
    """``patient/Observation.rs?category=laboratory``: a ``_has`` through Observation only sees laboratory ones."""
    lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    with _token(auth_server, ds, f"patient/Patient.rs patient/Observation.rs?category={lab}") as c:
        r = c.get("Patient", params={"_has:Observation:subject:code:text": "weight"})  # a laboratory Observation
        assert r.status_code == 200 and ids_in(r.json()) == {("Patient", ds.a.patient)}
        r = c.get("Patient", params={"_has:Observation:subject:code:text": "bp"})  # vital-signs: not visible
        assert r.status_code == 200 and not ids_in(r.json())
    with _token(auth_server, ds, "patient/Patient.rs patient/Observation.rs") as c:
        r = c.get("Patient", params={"_has:Observation:subject:code:text": "bp"})
        assert ids_in(r.json()) == {("Patient", ds.a.patient)}
    # and through a chain: Observations whose subject is a Patient the token may see
    with _token(auth_server, ds, "patient/Observation.rs patient/Patient.rs?gender=female") as c:
        r = c.get("Observation", params={"subject:Patient.name": f"ChildA{ds.tag}"})
        assert r.status_code == 200 and not ids_in(r.json())  # child A has no gender: outside the restriction


def test_the_denial_is_audited(auth_server: LiveServer, ds: Dataset) -> None:
    with _token(auth_server, ds, "patient/Patient.rs", client_id="chain-probe") as c:
        _forbidden(c.get("Patient", params={"_has:Observation:subject:code:text": "weight"}),
                   "patient/Observation.rs")
    auditor = client(auth_server, mint(auth_server, "system/AuditEvent.rs"))
    with auditor:
        deadline = time.monotonic() + 5
        while True:
            r = auditor.get("AuditEvent", params={"outcome": "4", "subtype": "search-type", "_count": "100",
                                                  "_sort": "-date"})
            found = [e["resource"] for e in r.json().get("entry", [])
                     if any(a.get("who", {}).get("display") == "chain-probe" for a in e["resource"]["agent"])]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert found and found[0]["outcomeDesc"].startswith("HTTP 403")
        assert {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"} in [
            e.get("type") for e in found[0].get("entity", [])]


def test_conditional_interactions_need_a_scope_on_traversed_types(auth_server: LiveServer, ds: Dataset) -> None:
    """A conditional delete/update whose condition chains probes the traversed type like a search (``_has`` is not a
    condition criterion):
    403 without a search scope on it; with one, the condition runs (here it matches nothing)."""
    cond = {"subject:Patient.name": f"Nobody{ds.tag}"}
    with _token(auth_server, ds, "patient/CarePlan.cruds") as c:
        _forbidden(c.delete("CarePlan", params=cond), "patient/Patient.rs")
    with _token(auth_server, ds, "patient/CarePlan.cruds patient/Patient.rs") as c:
        assert c.delete("CarePlan", params=cond).status_code in (200, 204)


def test_conditional_create_with_a_chain_finds_what_a_search_finds(auth_server: LiveServer, ds: Dataset) -> None:
    """The chain of an If-None-Exist condition looks at Patient with the token's search scope on Patient (not its
    create permission, which it does not have): the existing Observation matches and nothing is created."""
    cond = f"code:text=weight&subject:Patient.name=ChildA{ds.tag}"
    with _token(auth_server, ds, "patient/Observation.cruds patient/Patient.rs") as c:
        found = c.get(f"Observation?{cond}").json()
        assert found["total"] == 1, found
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
               "subject": {"reference": f"Patient/{ds.a.patient}"}}
        r = c.post("Observation", json=obs, headers={"If-None-Exist": cond})
        assert r.status_code == 200, r.text
        assert r.headers["location"].split("/_history")[0].endswith(found["entry"][0]["resource"]["id"])
