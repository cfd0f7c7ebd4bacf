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
