"""The demo Bundles are valid FHIR R4 (4.0.1).

Three layers, because each catches what the others miss:

* every resource (and every Bundle) parses with the fhir.resources R4B models – types, formats, required elements;
* every element exists in the vendored R4 StructureDefinitions (R4B has a few elements R4 lacks), with R4
  cardinality, JSON type, required-binding codes and Reference target types;
* a handful of R4 invariants that neither of the above evaluates (cpl-3, ctm-1, ppc-1/2, ait-1, bdl-7, ele-1).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.definitions import structure_definitions
from fhir_server.demo import load_bundles

BUNDLES = load_bundles()
IDS = [name for name, _ in BUNDLES]

# R4 (4.0.1) required value sets the demo touches: value set url -> (code system or None for `code`, codes).
# A required binding met while walking that is not listed here fails the test, so the table stays complete.
THO = "http://terminology.hl7.org/CodeSystem/"
REQUIRED: dict[str, tuple[str | None, set[str]]] = {
    "bundle-type": (None, {"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                           "history", "searchset", "collection"}),
    "http-verb": (None, {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}),
    "administrative-gender": (None, {"male", "female", "other", "unknown"}),
    "days-of-week": (None, {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}),
    "identifier-use": (None, {"usual", "official", "temp", "secondary", "old"}),
    "name-use": (None, {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}),
    "contact-point-system": (None, {"phone", "fax", "email", "pager", "url", "sms", "other"}),
    "contact-point-use": (None, {"home", "work", "temp", "old", "mobile"}),
    "address-use": (None, {"home", "work", "temp", "old", "billing"}),
    "address-type": (None, {"postal", "physical", "both"}),
    "condition-clinical": (THO + "condition-clinical",
                           {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}),
    "condition-ver-status": (THO + "condition-ver-status", {"unconfirmed", "provisional", "differential", "confirmed",
                                                             "refuted", "entered-in-error"}),
    "allergyintolerance-clinical": (THO + "allergyintolerance-clinical", {"active", "inactive", "resolved"}),
    "allergyintolerance-verification": (THO + "allergyintolerance-verification",
                                        {"unconfirmed", "confirmed", "refuted", "entered-in-error"}),
    "allergy-intolerance-type": (None, {"allergy", "intolerance"}),
    "allergy-intolerance-category": (None, {"food", "medication", "environment", "biologic"}),
    "allergy-intolerance-criticality": (None, {"low", "high", "unable-to-assess"}),
    "reaction-event-severity": (None, {"mild", "moderate", "severe"}),
    "medication-statement-status": (None, {"active", "completed", "entered-in-error", "intended", "stopped",
                                           "on-hold", "unknown", "not-taken"}),
    "care-team-status": (None, {"proposed", "active", "suspended", "inactive", "entered-in-error"}),
    "request-status": (None, {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}),
    "care-plan-intent": (None, {"proposal", "plan", "order", "option"}),
    "care-plan-activity-kind": (None, {"Appointment", "CommunicationRequest", "DeviceRequest", "MedicationRequest",
                                       "NutritionOrder", "Task", "ServiceRequest", "VisionPrescription"}),
    "care-plan-activity-status": (None, {"not-started", "scheduled", "in-progress", "on-hold", "completed",
                                         "cancelled", "stopped", "unknown", "entered-in-error"}),
    "goal-status": (None, {"proposed", "planned", "accepted", "active", "on-hold", "completed", "cancelled",
                           "entered-in-error", "rejected"}),
    "request-intent": (None, {"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                              "filler-order", "instance-order", "option"}),
    "request-priority": (None, {"routine", "urgent", "asap", "stat"}),
    "task-status": (None, {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
                           "in-progress", "on-hold", "failed", "completed", "entered-in-error"}),
    "task-intent": (None, {"unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
                           "instance-order", "option"}),
    "episode-of-care-status": (None, {"planned", "waitlist", "active", "onhold", "finished", "cancelled",
                                      "entered-in-error"}),
    "consent-state-codes": (None, {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}),
    "consent-provision-type": (None, {"deny", "permit"}),
    "clinicalimpression-status": (None, {"in-progress", "completed", "entered-in-error"}),
    "composition-status": (None, {"preliminary", "final", "amended", "entered-in-error"}),
    "narrative-status": (None, {"generated", "extensions", "additional", "empty"}),
    "event-status": (None, {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                            "entered-in-error", "unknown"}),
}
MIME = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")
PRIMITIVE_JSON = {"boolean": bool, "integer": int, "positiveInt": int, "unsignedInt": int, "decimal": (int, float)}
# R4 datatype regexes (datatypes.html) for the date/time primitives.
DATE_RE = re.compile(r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|"
                     r"3[0-1]))?)?$")
DATETIME_RE = re.compile(r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|"
                         r"3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):"
                         r"[0-5][0-9]|14:00)))?)?)?$")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$")


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def urn_types(bundle: dict[str, Any]) -> dict[str, str]:
    return {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"] if "fullUrl" in e}


# ------------------------------------------------------------------------------------------ R4B models
@pytest.mark.parametrize("name,bundle", BUNDLES, ids=IDS)
def test_demo_bundle_parses_with_r4b_models(name, bundle):
    get_fhir_model_class("Bundle").model_validate(bundle)


@pytest.mark.parametrize("name,bundle", BUNDLES, ids=IDS)
def test_demo_every_resource_validates_with_r4b_models(name, bundle):
    failures = []
    for i, res in enumerate(resources(bundle)):
        try:
            get_fhir_model_class(res["resourceType"]).model_validate(res)
        except Exception as e:  # noqa: BLE001 - report every failing entry at once
            failures.append(f"entry {i} {res['resourceType']}: {e}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------------------ R4 walker
class R4Walker:
    """Checks JSON against the base R4 StructureDefinitions (snapshot elements)."""

    def __init__(self, urn_to_type: dict[str, str]) -> None:
        self.sds = structure_definitions()
        self.elements: dict[str, dict[str, dict[str, Any]]] = {}
        self.urn_to_type = urn_to_type
        self.errors: list[str] = []

    def els(self, type_name: str) -> dict[str, dict[str, Any]]:
        if type_name not in self.elements:
            self.elements[type_name] = {el["path"]: el for el in self.sds[type_name]["snapshot"]["element"]}
        return self.elements[type_name]

    def children(self, type_name: str, path: str) -> list[dict[str, Any]]:
        depth = path.count(".") + 1
        return [el for p, el in self.els(type_name).items() if p.startswith(path + ".") and p.count(".") == depth]

    def resource(self, res: dict[str, Any], where: str) -> None:
        rtype = res.get("resourceType")
        if rtype not in self.sds or self.sds[rtype].get("kind") != "resource":
            self.errors.append(f"{where}: unknown resource type {rtype}")
            return
        self.complex(rtype, rtype, {k: v for k, v in res.items() if k != "resourceType"}, where)

    def complex(self, sd: str, path: str, obj: Any, where: str) -> None:
        if not isinstance(obj, dict) or not obj:
            self.errors.append(f"{where}: expected a non-empty object")
            return
        kids = self.children(sd, path)
        by_name = {el["path"].rsplit(".", 1)[1]: el for el in kids}
        seen: set[str] = set()
        for key, value in obj.items():
            if key.startswith("_"):
                continue
            el, type_code = self.lookup(by_name, key)
            if el is None:
                self.errors.append(f"{where}.{key}: not an R4 element of {path}")
                continue
            seen.add(el["path"].rsplit(".", 1)[1])
            many = el["max"] != "1"
            if many != isinstance(value, list):
                self.errors.append(f"{where}.{key}: R4 max is {el['max']} but JSON {'is' if many else 'is not'} "
                                   "missing an array")
                continue
            items = value if isinstance(value, list) else [value]
            if not items:
                self.errors.append(f"{where}.{key}: empty array")
            for i, item in enumerate(items):
                self.value(sd, el, type_code, item, f"{where}.{key}" + (f"[{i}]" if many else ""))
        for el in kids:
            name = el["path"].rsplit(".", 1)[1]
            if el.get("min", 0) >= 1 and name not in seen:
                self.errors.append(f"{where}: missing required R4 element {el['path']}")

    @staticmethod
    def lookup(by_name: dict[str, dict[str, Any]], key: str) -> tuple[dict[str, Any] | None, str | None]:
        if key in by_name:
            el = by_name[key]
            types = el.get("type") or []
            return el, (types[0]["code"] if len(types) == 1 else None)
        for name, el in by_name.items():
            if name.endswith("[x]") and key.startswith(name[:-3]):
                suffix = key[len(name) - 3:]
                for t in el.get("type", []):
                    if t["code"][:1].upper() + t["code"][1:] == suffix:
                        return el, t["code"]
        return None, None

    def value(self, sd: str, el: dict[str, Any], type_code: str | None, item: Any, where: str) -> None:
        if "contentReference" in el:
            self.complex(sd, el["contentReference"].lstrip("#"), item, where)
            return
        if type_code is None:
            self.errors.append(f"{where}: cannot tell the type of {el['path']}")
            return
        binding = el.get("binding") or {}
        if binding.get("strength") == "required":
            self.bound(binding["valueSet"], type_code, item, where)
        if type_code in ("BackboneElement", "Element") and self.children(sd, el["path"]):
            self.complex(sd, el["path"], item, where)
        elif type_code == "Resource":
            self.resource(item, where)
        elif type_code.startswith("http://hl7.org/fhirpath/") or type_code[:1].islower():
            self.primitive(type_code, item, where)
        else:
            if type_code == "Reference":
                self.reference(el, item, where)
            self.complex(type_code, type_code, item, where)

    def primitive(self, type_code: str, item: Any, where: str) -> None:
        expected = PRIMITIVE_JSON.get(type_code, str)
        if isinstance(item, bool) and type_code != "boolean" or not isinstance(item, expected):
            self.errors.append(f"{where}: {item!r} is not a JSON {type_code}")
        elif isinstance(item, str) and not item.strip():
            self.errors.append(f"{where}: empty string")
        elif type_code == "date" and not DATE_RE.match(item):
            self.errors.append(f"{where}: {item!r} is not an R4 date")
        elif type_code == "dateTime" and not DATETIME_RE.match(item):
            self.errors.append(f"{where}: {item!r} is not an R4 dateTime")
        elif type_code == "time" and not TIME_RE.match(item):
            self.errors.append(f"{where}: {item!r} is not an R4 time")

    def bound(self, value_set: str, type_code: str, item: Any, where: str) -> None:
        vs = value_set.split("|")[0].rsplit("/", 1)[1]
        if vs == "mimetypes":
            if not MIME.match(item):
                self.errors.append(f"{where}: {item!r} is not a MIME type")
            return
        if vs not in REQUIRED:
            self.errors.append(f"{where}: required binding {value_set} not in this test's table – add it")
            return
        system, codes = REQUIRED[vs]
        if type_code == "code":
            if item not in codes:
                self.errors.append(f"{where}: {item!r} not in required value set {vs}")
            return
        codings = item.get("coding", []) if type_code == "CodeableConcept" else [item]
        if not any(c.get("system") == system and c.get("code") in codes for c in codings):
            self.errors.append(f"{where}: no coding from required value set {vs}")

    def reference(self, el: dict[str, Any], item: dict[str, Any], where: str) -> None:
        target = item.get("reference")
        if target is None:
            return
        allowed = {p.rsplit("/", 1)[1] for t in el.get("type", []) if t["code"] == "Reference"
                   for p in t.get("targetProfile", [])}
        rtype = self.urn_to_type.get(target) if target.startswith("urn:") else target.split("/")[0]
        if rtype is None:
            self.errors.append(f"{where}: {target} is not a fullUrl in this bundle")
        elif allowed and "Resource" not in allowed and rtype not in allowed:
            self.errors.append(f"{where}: {rtype} is not an allowed R4 target of {el['path']} ({sorted(allowed)})")


@pytest.mark.parametrize("name,bundle", BUNDLES, ids=IDS)
def test_demo_bundle_conforms_to_r4_structure_definitions(name, bundle):
    walker = R4Walker(urn_types(bundle))
    walker.resource(bundle, "Bundle")
    assert not walker.errors, "\n".join(walker.errors[:50])


def test_demo_r4_walker_catches_mistakes():
    """The walker is only worth something if it fails on bad input."""
    bad = {"resourceType": "CarePlan", "status": "bogus", "intent": "plan", "subject": {"reference": "Goal/x"},
           "category": {"text": "not an array"}, "activity": [{"detail": {"status": "completed", "kindx": 1}}],
           "created": "2026-13-01", "author": {"reference": "Practitioner/a"}, "note": []}
    walker = R4Walker({})
    walker.resource(bad, "CarePlan")
    text = "\n".join(walker.errors)
    for expected in ("'bogus' not in required value set request-status", "Goal is not an allowed R4 target",
                     "category: R4 max is *", "kindx: not an R4 element", "not an R4 dateTime", "note: empty array"):
        assert expected in text, text
    walker = R4Walker({})
    walker.resource({"resourceType": "Task", "intent": "order"}, "Task")
    assert "missing required R4 element Task.status" in "\n".join(walker.errors)


# ------------------------------------------------------------------------------------------ invariants
def _walk(value: Any, path: str = ""):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("name,bundle", BUNDLES, ids=IDS)
def test_demo_no_empty_values_anywhere(name, bundle):
    """FHIR JSON: no empty objects, arrays or strings, no nulls (ele-1 and json.html)."""
    empty = [p for p, v in _walk(bundle) if v is None or v in ("", [], {})]
    assert not empty, empty[:20]


@pytest.mark.parametrize("name,bundle", BUNDLES, ids=IDS)
def test_demo_r4_invariants(name, bundle):
    errors = []
    full_urls = [e["fullUrl"] for e in bundle["entry"] if "fullUrl" in e]
    if len(full_urls) != len(set(full_urls)):
        errors.append("bdl-7: fullUrl not unique")
    for url in full_urls:
        if url.startswith("urn:uuid:"):
            uuid.UUID(url[len("urn:uuid:"):])
    for i, res in enumerate(resources(bundle)):
        rtype, where = res["resourceType"], f"entry {i} {res['resourceType']}"
        if rtype == "CarePlan":
            for a in res.get("activity", []):
                if "reference" in a and "detail" in a:
                    errors.append(f"{where}: cpl-3 activity has both reference and detail")
        if rtype == "CareTeam":
            for p in res.get("participant", []):
                if "onBehalfOf" in p and not p["member"]["reference"].startswith("Practitioner/"):
                    errors.append(f"{where}: ctm-1 onBehalfOf only when the member is a Practitioner")
        if rtype == "Consent":
            if not (res.get("policy") or res.get("policyRule")):
                errors.append(f"{where}: ppc-1 needs policy or policyRule")
            scopes = {c.get("code") for c in res.get("scope", {}).get("coding", [])}
            if scopes & {"patient-privacy", "research", "adr", "treatment"} and "patient" not in res:
                errors.append(f"{where}: ppc-2..5 scope needs a patient")
        if rtype == "AllergyIntolerance":
            ver = {c.get("code") for c in res.get("verificationStatus", {}).get("coding", [])}
            if "entered-in-error" not in ver and "clinicalStatus" not in res:
                errors.append(f"{where}: ait-1 clinicalStatus required")
        if rtype == "Goal":
            for t in res.get("target", []):
                if "detailQuantity" in t and "measure" not in t:
                    errors.append(f"{where}: gol-1 target.detail needs target.measure")
    assert not errors, errors
