"""``user/`` scopes: a user sees the children the CARES rules give them (auth/visibility.py) — a PCP on A's
CareTeam sees A not B, CARES staff see both, a parent (RelatedPerson) and a Patient user only their child —
and SMART v2 query restrictions (``patient/Observation.rs?category=…``)."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.enforce_data import Dataset, client, dataset, ids_in
from tests.auth.test_enforce_basic import _add_user
from tests.conftest import LiveServer, mint

LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"


@pytest.fixture
def ds(auth_server: LiveServer) -> Dataset:
    return dataset(auth_server)


def _user_client(server: LiveServer, ds: Dataset, name: str, roles: list[str], fhir_user: str,
                 scope: str = "user/*.rs") -> httpx.Client:
    username = f"{name}-{ds.tag}"
    _add_user(server, username, roles, fhir_user)
    return client(server, mint(server, scope, username=username, fhir_user=fhir_user))


def _sees(c: httpx.Client, ds: Dataset) -> set[str]:
    """Which of A and B the client sees, by read and by search (both must agree)."""
    by_read = {k for k, ch in (("A", ds.a), ("B", ds.b))
               if c.get(f"CarePlan/{ch.ids['CarePlan'][0]}").status_code == 200}
    found = ids_in(c.get("CarePlan", params={"_count": "200"}).json())
    by_search = {k for k, ch in (("A", ds.a), ("B", ds.b)) if ("CarePlan", ch.ids["CarePlan"][0]) in found}
    patients = ids_in(c.get("Patient", params={"_count": "200"}).json())
    by_patient = {k for k, ch in (("A", ds.a), ("B", ds.b)) if ("Patient", ch.patient) in patients}
    assert by_read == by_search == by_patient, (by_read, by_search, by_patient)
    for k, ch in (("A", ds.a), ("B", ds.b)):
        if k not in by_read:
            assert c.get(f"Patient/{ch.patient}").status_code == 404
    return by_read


def test_pcp_on_a_careteam_sees_a_not_b(auth_server: LiveServer, ds: Dataset) -> None:
    with _user_client(auth_server, ds, "pcp", ["pcp"], f"Practitioner/{ds.a.practitioner}") as c:
        assert _sees(c, ds) == {"A"}
        r = c.get(f"Patient/{ds.b.patient}/*")
        assert r.status_code == 404


def test_practitioner_role_user_resolves_to_its_practitioner(auth_server: LiveServer, ds: Dataset) -> None:
    with _user_client(auth_server, ds, "pcprole", ["pcp"], f"PractitionerRole/{ds.b.role}") as c:
        assert _sees(c, ds) == {"B"}


def test_cares_staff_see_every_child(auth_server: LiveServer, ds: Dataset) -> None:
    with _user_client(auth_server, ds, "staff", ["cares-staff"], f"Practitioner/{ds.a.practitioner}") as c:
        assert _sees(c, ds) == {"A", "B"}


def test_related_person_and_patient_users(auth_server: LiveServer, ds: Dataset) -> None:
    with _user_client(auth_server, ds, "parent", ["parent"], f"RelatedPerson/{ds.b.related}") as c:
        assert _sees(c, ds) == {"B"}
    with _user_client(auth_server, ds, "self", [], f"Patient/{ds.a.patient}") as c:
        assert _sees(c, ds) == {"A"}


def test_user_without_fhir_user_sees_no_child(auth_server: LiveServer, ds: Dataset) -> None:
    with client(auth_server, mint(auth_server, "user/*.rs", username=f"ghost-{ds.tag}")) as c:
        assert _sees(c, ds) == set()


def test_user_writes_only_into_their_children(auth_server: LiveServer, ds: Dataset) -> None:
    with _user_client(auth_server, ds, "pcpw", ["pcp"], f"Practitioner/{ds.a.practitioner}",
                      scope="user/Observation.cruds") as c:
        for child, want in ((ds.a, 201), (ds.b, 403)):
            obs = {"resourceType": "Observation", "status": "final", "code": {"text": "note"},
                   "subject": {"reference": f"Patient/{child.patient}"}}
            assert c.post("Observation", json=obs).status_code == want


# -------------------------------------------------------------------------------- v2 query restrictions
def test_v2_restriction_limits_search_and_read(auth_server: LiveServer, ds: Dataset) -> None:
    lab, vitals = ds.a.ids["Observation"]
    with client(auth_server, mint(auth_server, f"patient/Observation.rs?category={LAB}", patient=ds.a.patient)) as c:
        found = ids_in(c.get("Observation").json())
        assert found == {("Observation", lab)}
        assert c.get(f"Observation/{lab}").status_code == 200
        assert c.get(f"Observation/{vitals}").status_code == 404
        assert c.get(f"Observation/{vitals}/_history/1").status_code == 404
        assert ids_in(c.get("Observation", params={"category": VITALS}).json()) == set()
        assert c.get("Observation", params={"_summary": "count"}).json()["total"] == 1
        assert ("Observation", vitals) not in ids_in(c.get(f"Patient/{ds.a.patient}/Observation").json())
    two = f"patient/Observation.rs?category={LAB} patient/Observation.rs?category={VITALS}"
    with client(auth_server, mint(auth_server, two, patient=ds.a.patient)) as c:
        assert ids_in(c.get("Observation").json()) == {("Observation", lab), ("Observation", vitals)}


def test_v2_restriction_limits_writes(auth_server: LiveServer, ds: Dataset) -> None:
    scope = f"patient/Observation.crus?category={LAB}"
    with client(auth_server, mint(auth_server, scope, patient=ds.a.patient)) as c:
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "w"},
               "subject": {"reference": f"Patient/{ds.a.patient}"}}
        vit = {**obs, "category": [{"coding": [{"system": VITALS.split("|")[0], "code": "vital-signs"}]}]}
        labobs = {**obs, "category": [{"coding": [{"system": LAB.split("|")[0], "code": "laboratory"}]}]}
        assert c.post("Observation", json=vit).status_code == 403
        r = c.post("Observation", json=labobs)
        assert r.status_code == 201, r.text
        oid = r.json()["id"]
        assert c.put(f"Observation/{oid}", json={**vit, "id": oid}).status_code == 403
        assert c.get(f"Observation/{oid}").json()["category"][0]["coding"][0]["code"] == "laboratory"
        vitals = ds.a.ids["Observation"][1]
        assert c.put(f"Observation/{vitals}", json={**labobs, "id": vitals}).status_code == 403
