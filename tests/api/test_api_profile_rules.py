"""Profile rules (profile_checks.py): a server-configured profile that applies to resources of a type
matching a FHIRPath condition, whether or not they declare it in meta.profile."""

from __future__ import annotations

import asyncio
import json

from fhir_server.config import Settings
from fhir_server.interactions import profile_checks


class _Svc:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def test_rules_select_profiles_by_type_and_fhirpath(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [
        {"resourceType": "CarePlan", "profile": "http://example.org/icp",
         "condition": "category.coding.where(system = 'urn:cat' and code = 'icp').exists()",
         "source": "Appendix M §VI.A.1.c"},
        {"resourceType": "Patient", "profile": "http://example.org/member"}]}))
    svc = _Svc(Settings(profile_rules=str(rules)))
    icp = {"resourceType": "CarePlan", "category": [{"coding": [{"system": "urn:cat", "code": "icp"}]}],
           "meta": {"profile": ["http://example.org/declared"]}}
    other = {"resourceType": "CarePlan", "category": [{"coding": [{"system": "urn:cat", "code": "other"}]}]}
    assert profile_checks.applicable_profiles(svc, icp) == ["http://example.org/declared", "http://example.org/icp"]
    assert profile_checks.applicable_profiles(svc, other) == []
    assert profile_checks.applicable_profiles(svc, {"resourceType": "Patient"}) == ["http://example.org/member"]
    # no profile applies: nothing beyond the structural check
    assert asyncio.run(profile_checks.enforce(svc, other)) == []


def test_strict_must_support_setting_reports_absent_must_support_elements(tmp_path):
    import asyncio

    from fhir_server.validation.registry import default_registry

    url = "http://example.org/fhir/StructureDefinition/ms-patient"
    default_registry().add({
        "resourceType": "StructureDefinition", "url": url, "name": "MsPatient", "status": "active",
        "kind": "resource", "abstract": False, "type": "Patient", "fhirVersion": "4.0.1",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [{"id": "Patient", "path": "Patient"},
                                     {"id": "Patient.birthDate", "path": "Patient.birthDate", "mustSupport": True}]}})
    patient = {"resourceType": "Patient", "meta": {"profile": [url]}}
    lax = asyncio.run(profile_checks.validation_issues(_Svc(Settings()), patient))
    strict = asyncio.run(profile_checks.validation_issues(_Svc(Settings(strict_must_support=True)), patient))
    assert not any("mustSupport" in i.diagnostics for i in lax)
    assert [i.expression for i in strict if "mustSupport" in i.diagnostics] == [("Patient.birthDate",)]
