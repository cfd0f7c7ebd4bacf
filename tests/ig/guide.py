"""What the guide's HTTP tests share: where the guide lives, its canonical bases, and `$validate` / error helpers."""

from __future__ import annotations

from pathlib import Path

FHIR_JSON = {"Content-Type": "application/fhir+json"}
ROOT = Path(__file__).resolve().parents[2]
IG = ROOT / "profiles" / "data" / "ig"
DEMO = ROOT / "fhir_server" / "demo"

BASE = "http://cares-fhir.org/fhir"
SD = f"{BASE}/StructureDefinition/"
CS = f"{BASE}/CodeSystem/"
VS = f"{BASE}/ValueSet/"


def errors(oo: dict, *severities: str) -> list[dict]:
    """The issues of an OperationOutcome with these severities (default: error and fatal)."""
    assert oo["resourceType"] == "OperationOutcome", oo
    return [i for i in oo["issue"] if i["severity"] in (severities or ("error", "fatal"))]


def validate(fhir, resource: dict, profile: str | None = None, *, bare: bool = False) -> dict:
    """``POST [type]/$validate`` with Parameters (``resource``, optional ``profile``); the OperationOutcome.
    ``bare``: send the resource without its ``meta`` (the profile then comes from the parameter only)."""
    if bare:
        resource = {k: v for k, v in resource.items() if k != "meta"}
    params = [{"name": "resource", "resource": resource}]
    if profile:
        params.append({"name": "profile", "valueCanonical": profile})
    r = fhir.post(f"{resource['resourceType']}/$validate", json={"resourceType": "Parameters", "parameter": params},
                  headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    return r.json()
