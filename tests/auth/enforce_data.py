"""Test data for the enforcement tests: two children (A and B), each with a resource of every CARES guide type
(plain R4, no profiles), created once per live server through the API with a ``system/*.cruds`` token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import LiveServer, mint

#: the CARES guide's resource types, as created for each child (type → id key in Child.ids)
CARES_TYPES = ("Patient", "RelatedPerson", "CareTeam", "Goal", "CarePlan", "Composition", "ServiceRequest", "Task",
               "EpisodeOfCare", "Consent", "Communication", "Procedure", "QuestionnaireResponse", "Encounter",
               "Condition", "MedicationStatement", "AllergyIntolerance", "Observation")


@dataclass
class Child:
    patient: str
    ids: dict[str, list[str]] = field(default_factory=dict)  # type → ids (CarePlan: ICP and emergency plan)
    practitioner: str = ""  # the PCP on this child's CareTeam
    role: str = ""  # the PCP's PractitionerRole
    related: str = ""  # the parent (RelatedPerson)

    def all(self) -> list[tuple[str, str]]:
        return [(t, i) for t, ids in self.ids.items() for i in ids]


@dataclass
class Dataset:
    tag: str
    a: Child
    b: Child
    organization: str


_CACHE: dict[str, Dataset] = {}


def _child_entries(tag: str, name: str, pcp: str, role: str) -> list[dict[str, Any]]:
    def u() -> str:
        return f"urn:uuid:{uuid.uuid4()}"

    pat = u()
    rp = u()
    goal = u()
    team = u()
    subj = {"reference": pat}
    res: list[tuple[str, dict[str, Any]]] = [
        (pat, {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": f"{tag}-{name}"}],
               "name": [{"family": f"Child{name}{tag}"}], "birthDate": "2015-01-01"}),
        (rp, {"resourceType": "RelatedPerson", "patient": subj, "name": [{"family": f"Parent{name}{tag}"}]}),
        (team, {"resourceType": "CareTeam", "status": "active", "subject": subj, "participant": [
            {"member": {"reference": f"Practitioner/{pcp}"}}, {"member": {"reference": f"PractitionerRole/{role}"}},
            {"member": {"reference": rp}}]}),
        (goal, {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "walk"},
                "subject": subj}),
        (u(), {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subj,
               "title": f"ICP {name}", "careTeam": [{"reference": team}], "goal": [{"reference": goal}]}),
        (u(), {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subj,
               "title": f"Emergency plan {name}"}),
        (u(), {"resourceType": "Composition", "status": "final", "type": {"text": "summary"}, "subject": subj,
               "date": "2024-01-01", "author": [{"reference": f"Practitioner/{pcp}"}], "title": "Health summary"}),
        (u(), {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": subj,
               "requester": {"reference": f"Practitioner/{pcp}"}}),
        (u(), {"resourceType": "Task", "status": "requested", "intent": "order", "for": subj}),
        (u(), {"resourceType": "EpisodeOfCare", "status": "active", "patient": subj}),
        (u(), {"resourceType": "Consent", "status": "active", "scope": {"text": "treatment"},
               "category": [{"text": "consent"}], "patient": subj}),
        (u(), {"resourceType": "Communication", "status": "completed", "subject": subj}),
        (u(), {"resourceType": "Procedure", "status": "completed", "subject": subj}),
        (u(), {"resourceType": "QuestionnaireResponse", "status": "completed", "subject": subj}),
        (u(), {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": subj}),
        (u(), {"resourceType": "Condition", "subject": subj, "code": {"text": "cond"}}),
        (u(), {"resourceType": "MedicationStatement", "status": "active", "subject": subj,
               "medicationCodeableConcept": {"text": "med"}}),
        (u(), {"resourceType": "AllergyIntolerance", "patient": subj}),
        (u(), {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}, "subject": subj,
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                         "code": "laboratory"}]}]}),
        (u(), {"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, "subject": subj,
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                         "code": "vital-signs"}]}]}),
    ]
    entries = [{"fullUrl": full, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
               for full, r in res]
    return entries


def _post_tx(client: httpx.Client, entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    r = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text
    out = []
    for e in r.json()["entry"]:
        rtype, rid = e["response"]["location"].split("/")[:2]
        out.append((rtype, rid))
    return out


def dataset(server: LiveServer) -> Dataset:
    """The two children on ``server`` (created on first use)."""
    if server.base in _CACHE:
        return _CACHE[server.base]
    tag = uuid.uuid4().hex[:8]
    token = mint(server, "system/*.cruds", client_id="test-setup")
    with httpx.Client(base_url=server.base + "/", timeout=60,
                      headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}) as c:
        org = c.post("Organization", json={"resourceType": "Organization", "name": f"Clinic {tag}"}).json()["id"]
        children = []
        for name in ("A", "B"):
            pcp = c.post("Practitioner", json={"resourceType": "Practitioner",
                                               "name": [{"family": f"Pcp{name}{tag}"}]}).json()["id"]
            role = c.post("PractitionerRole", json={"resourceType": "PractitionerRole",
                                                    "practitioner": {"reference": f"Practitioner/{pcp}"},
                                                    "organization": {"reference": f"Organization/{org}"}}
                          ).json()["id"]
            made = _post_tx(c, _child_entries(tag, name, pcp, role))
            ch = Child(patient=made[0][1], practitioner=pcp, role=role, related=made[1][1])
            for rtype, rid in made:
                ch.ids.setdefault(rtype, []).append(rid)
            children.append(ch)
    ds = Dataset(tag, children[0], children[1], org)
    _CACHE[server.base] = ds
    return ds


def client(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base + "/", timeout=60,
                        headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"})


def ids_in(bundle: dict[str, Any]) -> set[tuple[str, str]]:
    """(type, id) of every resource in a Bundle (search, history, batch/transaction response)."""
    out = set()
    for e in bundle.get("entry", []):
        r = e.get("resource")
        if isinstance(r, dict) and r.get("resourceType") not in ("OperationOutcome", "Bundle"):
            out.add((r["resourceType"], r["id"]))
        if isinstance(r, dict) and r.get("resourceType") == "Bundle":
            out |= ids_in(r)
    return out
