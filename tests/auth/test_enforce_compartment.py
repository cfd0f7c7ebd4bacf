"""Patient compartment enforcement: a ``patient/*`` token for child A gets nothing of child B through any
interaction (read, vread, search, _include, _revinclude, chains, _has, history, compartment search, batch and
transaction), and cannot write into B's compartment."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.auth.enforce_data import CARES_TYPES, Dataset, client, dataset, ids_in
from tests.conftest import LiveServer, mint


@pytest.fixture
def ds(auth_server: LiveServer) -> Dataset:
    return dataset(auth_server)


@pytest.fixture
def a_client(auth_server: LiveServer, ds: Dataset) -> httpx.Client:
    with client(auth_server, mint(auth_server, "patient/*.cruds", patient=ds.a.patient)) as c:
        yield c


def _b_ids(ds: Dataset) -> set[tuple[str, str]]:
    return set(ds.b.all())


def _no_b(ds: Dataset, bundle: dict[str, Any]) -> set[tuple[str, str]]:
    found = ids_in(bundle)
    assert not found & _b_ids(ds), sorted(found & _b_ids(ds))
    return found


def test_read_and_vread_of_b_are_404(a_client: httpx.Client, ds: Dataset) -> None:
    for rtype, rid in ds.a.all():
        assert a_client.get(f"{rtype}/{rid}").status_code == 200, (rtype, rid)
    for rtype, rid in ds.b.all():
        for path in (f"{rtype}/{rid}", f"{rtype}/{rid}/_history/1", f"{rtype}/{rid}?_summary=true"):
            r = a_client.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["resourceType"] == "OperationOutcome"
    # shared types named by the scope (patient/*) are readable
    assert a_client.get(f"Practitioner/{ds.b.practitioner}").status_code == 200
    assert a_client.get(f"Organization/{ds.organization}").status_code == 200


@pytest.mark.parametrize("rtype", CARES_TYPES)
def test_search_every_type_finds_only_a(a_client: httpx.Client, ds: Dataset, rtype: str) -> None:
    r = a_client.get(rtype, params={"_count": "200"})
    assert r.status_code == 200, r.text
    found = _no_b(ds, r.json())
    assert {(rtype, i) for i in ds.a.ids[rtype]} <= found
    assert all(t == rtype for t, _ in found)
    # asking for B explicitly finds nothing either
    key = "_id"
    r = a_client.get(rtype, params={key: ",".join(ds.b.ids[rtype])})
    assert r.status_code == 200 and not ids_in(r.json())
    # _summary=count and _total do not leak B's resources
    total = a_client.get(rtype, params={"_summary": "count"}).json()["total"]
    assert total == len({i for t, i in found})


def test_search_by_b_reference_finds_nothing(a_client: httpx.Client, ds: Dataset) -> None:
    for params in ({"subject": f"Patient/{ds.b.patient}"}, {"patient": ds.b.patient}):
        r = a_client.get("CarePlan", params=params)
        assert r.status_code == 200 and not ids_in(r.json())


def test_include_and_revinclude_bring_nothing_of_b(a_client: httpx.Client, ds: Dataset,
                                                  auth_server: LiveServer) -> None:
    rev = [("_revinclude", f"{t}:*") for t in ("CarePlan", "Observation", "CareTeam", "Goal", "Task", "Consent")]
    r = a_client.get("Patient", params=[*rev, ("_count", "200")])
    assert r.status_code == 200, r.text
    found = _no_b(ds, r.json())
    assert ("CarePlan", ds.a.ids["CarePlan"][0]) in found
    r = a_client.get("Patient", params={"_revinclude:iterate": "CarePlan:care-team", "_revinclude": "CareTeam:patient"})
    _no_b(ds, r.json())
    r = a_client.get("CarePlan", params={"_include": "*", "_include:iterate": "CareTeam:participant"})
    found = _no_b(ds, r.json())
    assert ("Practitioner", ds.a.practitioner) in found  # a shared type the scope names
    # from a shared resource (B's PCP) back into B's compartment
    params = [("_id", ds.b.practitioner), ("_revinclude", "CareTeam:participant"),
              ("_revinclude:iterate", "CarePlan:care-team"), ("_include:iterate", "CareTeam:subject")]
    r = a_client.get("Practitioner", params=params)
    assert r.status_code == 200, r.text
    assert _no_b(ds, r.json()) == {("Practitioner", ds.b.practitioner)}
    with client(auth_server, mint(auth_server, "system/*.rs")) as admin:  # the same search does bring B's data
        found = ids_in(admin.get("Practitioner", params=params).json())
        assert {("CareTeam", ds.b.ids["CareTeam"][0]), ("CarePlan", ds.b.ids["CarePlan"][0]),
                ("Patient", ds.b.patient)} <= found


def test_chains_and_has_only_narrow(a_client: httpx.Client, ds: Dataset, auth_server: LiveServer) -> None:
    b_name = f"ChildB{ds.tag}"
    r = a_client.get("CarePlan", params={"subject:Patient.name": b_name})
    assert r.status_code == 200 and not ids_in(r.json())
    r = a_client.get("CarePlan", params={"subject:Patient.name": f"ChildA{ds.tag}"})
    assert {("CarePlan", i) for i in ds.a.ids["CarePlan"]} <= ids_in(r.json())
    # _has through B's resources does not reveal which shared resources B's data points at
    r = a_client.get("Practitioner", params={"_has:CareTeam:participant:subject": f"Patient/{ds.b.patient}"})
    assert r.status_code == 200 and not ids_in(r.json())
    r = a_client.get("Practitioner", params={"_has:CareTeam:participant:subject": f"Patient/{ds.a.patient}"})
    assert ("Practitioner", ds.a.practitioner) in ids_in(r.json())
    r = a_client.get("Patient", params={"_has:Observation:patient:code:text": "weight"})
    assert ids_in(r.json()) == {("Patient", ds.a.patient)}
    # chains from a shared type into the compartment are limited too
    r = a_client.get("PractitionerRole", params={"practitioner:Practitioner._has:CareTeam:participant:subject":
                                                 f"Patient/{ds.b.patient}"})
    assert r.status_code == 200 and not ids_in(r.json())
    with client(auth_server, mint(auth_server, "system/*.rs")) as admin:  # the same searches do find B's data
        r = admin.get("Practitioner", params={"_has:CareTeam:participant:subject": f"Patient/{ds.b.patient}"})
        assert ("Practitioner", ds.b.practitioner) in ids_in(r.json())


def test_history_instance_type_system(a_client: httpx.Client, ds: Dataset) -> None:
    for rtype, rid in ds.b.all()[:5]:
        assert a_client.get(f"{rtype}/{rid}/_history").status_code == 404
    assert a_client.get(f"Patient/{ds.a.patient}/_history").status_code == 200
    for rtype in ("Patient", "CarePlan", "Observation"):
        r = a_client.get(f"{rtype}/_history", params={"_count": "200"})
        assert r.status_code == 200
        _no_b(ds, r.json())
    r = a_client.get("_history", params={"_count": "200"})
    assert r.status_code == 200
    _no_b(ds, r.json())


def test_compartment_search_of_b(a_client: httpx.Client, ds: Dataset) -> None:
    r = a_client.get(f"Patient/{ds.a.patient}/*", params={"_count": "200"})
    assert r.status_code == 200
    found = _no_b(ds, r.json())
    assert ("Goal", ds.a.ids["Goal"][0]) in found
    for path in (f"Patient/{ds.b.patient}/*", f"Patient/{ds.b.patient}/CarePlan"):
        r = a_client.get(path)
        assert r.status_code == 404, r.text


def test_batch_and_transaction_reads(a_client: httpx.Client, ds: Dataset) -> None:
    entries = [{"request": {"method": "GET", "url": f"{t}/{i}"}} for t, i in ds.b.all()[:6]]
    entries += [{"request": {"method": "GET", "url": f"CarePlan?subject=Patient/{ds.b.patient}"}},
                {"request": {"method": "GET", "url": f"Patient/{ds.a.patient}"}},
                {"request": {"method": "GET", "url": "Observation/_history"}}]
    r = a_client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert r.status_code == 200
    body = r.json()
    _no_b(ds, body)
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[:6] == ["404"] * 6
    assert ("Patient", ds.a.patient) in ids_in(body)
    r = a_client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries[:1]})
    assert r.status_code == 404
    assert "B" not in str(ids_in(r.json()))


def test_writes_into_b_are_403(a_client: httpx.Client, ds: Dataset) -> None:
    b_ref = {"reference": f"Patient/{ds.b.patient}"}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": b_ref}
    assert a_client.post("Observation", json=obs).status_code == 403
    # a resource of A that also names B (performer is a compartment parameter of Observation)
    both = {**obs, "subject": {"reference": f"Patient/{ds.a.patient}"}, "performer": [b_ref]}
    assert a_client.post("Observation", json=both).status_code == 403
    mine = {**obs, "subject": {"reference": f"Patient/{ds.a.patient}"}}
    r = a_client.post("Observation", json=mine)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    # moving A's resource into B
    assert a_client.put(f"Observation/{mid}", json={**obs, "id": mid}).status_code == 403
    patch = b'[{"op":"replace","path":"/subject/reference","value":"Patient/%s"}]' % ds.b.patient.encode()
    assert a_client.patch(f"Observation/{mid}", content=patch,
                          headers={"Content-Type": "application/json-patch+json"}).status_code == 403
    # changing or deleting B's resources
    b_obs = ds.b.ids["Observation"][0]
    assert a_client.put(f"Observation/{b_obs}", json={**mine, "id": b_obs}).status_code == 403
    assert a_client.delete(f"Observation/{b_obs}").status_code == 403
    assert a_client.delete(f"Patient/{ds.b.patient}").status_code == 403
    # conditional delete only sees A's resources
    r = a_client.delete("Observation", params={"subject": f"Patient/{ds.b.patient}"})
    assert r.status_code == 200
    # shared types are not written by a patient token
    assert a_client.post("Practitioner", json={"resourceType": "Practitioner"}).status_code == 403
    # transaction with one entry into B fails as a whole
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": mine, "request": {"method": "POST", "url": "Observation"}},
        {"resource": obs, "request": {"method": "POST", "url": "Observation"}}]}
    assert a_client.post("", json=tx).status_code == 403
    batch = {**tx, "type": "batch"}
    r = a_client.post("", json=batch)
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created", "403"]
    assert a_client.delete(f"Observation/{mid}").status_code == 204


def test_operations_post_search_and_conditional_update_of_b(a_client: httpx.Client, ds: Dataset) -> None:
    assert a_client.get(f"Patient/{ds.b.patient}/$validate").status_code == 404
    assert a_client.get(f"Patient/{ds.a.patient}/$validate").status_code == 200
    r = a_client.post("CarePlan/_search", data={"subject": f"Patient/{ds.b.patient}"})
    assert r.status_code == 200 and not ids_in(r.json())
    r = a_client.post("CarePlan/_search", data={"_count": "200"})
    assert {("CarePlan", i) for i in ds.a.ids["CarePlan"]} <= _no_b(ds, r.json())
    # a conditional update whose criteria match only B's resource does not touch it: it creates A's
    goal = {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "run"},
            "subject": {"reference": f"Patient/{ds.a.patient}"}}
    r = a_client.put("Goal", params={"_id": ds.b.ids["Goal"][0]}, json=goal)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != ds.b.ids["Goal"][0]
    assert a_client.delete(f"Goal/{r.json()['id']}").status_code == 204


def test_b_data_unchanged(auth_server: LiveServer, ds: Dataset) -> None:
    with client(auth_server, mint(auth_server, "system/*.rs")) as admin:
        for rtype, rid in ds.b.all():
            r = admin.get(f"{rtype}/{rid}")
            assert r.status_code == 200, (rtype, rid)


def _compartment_param(rtype: str) -> str:
    """The first parameter of ``rtype`` in the R4 Patient CompartmentDefinition."""
    from fhir_server.definitions import patient_compartment

    return next(r["param"][0] for r in patient_compartment()["resource"] if r["code"] == rtype and r.get("param"))


@pytest.mark.parametrize("rtype", [t for t in CARES_TYPES if t != "Patient"])
def test_every_type_leaks_nothing_of_b_through_any_path(a_client: httpx.Client, ds: Dataset, rtype: str) -> None:
    """Issue 7 "cross-patient tests", per CARES type: B's resources of ``rtype`` are invisible through vread,
    instance and type history, a chain onto B's patient, ``_has`` from B's patient, ``_revinclude`` from every
    patient, and a transaction read — while A's are found through the same paths."""
    param = _compartment_param(rtype)
    (b_id, *_), (a_id, *_) = ds.b.ids[rtype], ds.a.ids[rtype]
    for path in (f"{rtype}/{b_id}/_history/1", f"{rtype}/{b_id}/_history"):
        assert a_client.get(path).status_code == 404, path
    assert (rtype, a_id) in _no_b(ds, a_client.get(f"{rtype}/_history", params={"_count": "500"}).json())
    for child, found in ((ds.b, False), (ds.a, True)):
        name = f"Child{'B' if child is ds.b else 'A'}{ds.tag}"
        r = a_client.get(rtype, params={f"{param}:Patient.name": name, "_count": "200"})
        assert r.status_code == 200, r.text
        assert ((rtype, child.ids[rtype][0]) in _no_b(ds, r.json())) is found
        r = a_client.get("Patient", params={f"_has:{rtype}:{param}:_id": child.ids[rtype][0]})
        assert r.status_code == 200, r.text
        assert _no_b(ds, r.json()) == ({("Patient", ds.a.patient)} if found else set())
    r = a_client.get("Patient", params={"_revinclude": f"{rtype}:{param}", "_count": "200"})
    assert (rtype, a_id) in _no_b(ds, r.json())
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "GET",
                                                                                  "url": f"{rtype}/{b_id}"}}]}
    assert a_client.post("", json=tx).status_code == 404
