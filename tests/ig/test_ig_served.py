"""Issue 6 "done when": every profile, extension, value set, code system and search parameter of the CARES guide is
loaded by the server, served as a resource, and every CARES search parameter finds the example resources that carry a
value for it — through HTTP, on both backends.

The search values are taken from the valid example transactions and the demo children by evaluating each
SearchParameter's own expression (fhirpathpy, test side only), so a parameter whose expression, index extraction or
search does not work fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from tests.ig.guide import FHIR_JSON, IG, ROOT

TX = ROOT / "terminology" / "data" / "cares"
R4 = models["r4"]
EXAMPLES = ROOT / "profiles" / "data" / "examples"
TRANSACTIONS = [EXAMPLES / "icp" / "valid-icp-transaction.json",
                EXAMPLES / "program" / "valid-program-transaction.json",
                EXAMPLES / "referral" / "valid-referral-transaction.json"]


def _resources(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data["resourceType"] == "Bundle":
        return [e["resource"] for e in data["entry"]]
    return [data]


GUIDE = [r for d in (IG, TX) for p in sorted(d.glob("*.json")) for r in _resources(p)]
SEARCH_PARAMETERS = [r for r in GUIDE if r["resourceType"] == "SearchParameter"]


@pytest.mark.parametrize("resource", GUIDE, ids=[f"{r['resourceType']}/{r['id']}" for r in GUIDE])
def test_every_guide_resource_is_served_by_url_and_id(fhir, resource):
    rtype, url = resource["resourceType"], resource["url"]
    found = fhir.get(rtype, params={"url": url}).json()
    assert [(e["resource"]["url"], e["resource"]["version"]) for e in found.get("entry", [])] == \
        [(url, resource["version"])], found
    served = fhir.get(f"{rtype}/{found['entry'][0]['resource']['id']}")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/fhir+json")


def _search_value(sp: dict[str, Any], value: Any) -> str | None:
    """The search string that must match a resource whose expression yields ``value``."""
    kind = sp["type"]
    if kind == "token":
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, dict):
            coding = (value.get("coding") or [value])[0]
            if coding.get("code"):
                return f"{coding['system']}|{coding['code']}" if coding.get("system") else coding["code"]
        return None
    if kind == "date":
        return f"eq{str(value)[:10]}"
    if kind == "reference":
        return value.get("reference") if isinstance(value, dict) else None
    if kind == "string":
        return str(value)
    return None


_POSTED: dict[str, list[dict[str, Any]]] = {}  # server base -> what _post_examples wrote there


def _post_examples(fhir) -> list[dict[str, Any]]:
    """Post the valid example transactions (PUTs with fixed ids) and the demo children (POSTs: the ids the server
    assigned are filled in from the response) once per server; every resource they wrote."""
    from fhir_server.demo import load_bundles

    key = str(fhir.base_url)
    if key in _POSTED:
        return _POSTED[key]
    out: list[dict[str, Any]] = []
    for bundle in [*(json.loads(p.read_text(encoding="utf-8")) for p in TRANSACTIONS),
                   *(b for _, b in load_bundles())]:
        r = fhir.post("", json=bundle, headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        written = {e.get("fullUrl", str(i)): "/".join(res["response"]["location"].split("/_history")[0].split("/")[-2:])
                   for i, (e, res) in enumerate(zip(bundle["entry"], r.json()["entry"], strict=True))}
        text = json.dumps([e["resource"] for e in bundle["entry"]])
        for urn, ref in written.items():  # what the server stored: urn:uuid references rewritten
            text = text.replace(f'"{urn}"', f'"{ref}"')
        out += [{**res, "id": ref.split("/")[1]} for res, ref in zip(json.loads(text), written.values(), strict=True)]
    _POSTED[key] = out
    return out


@pytest.mark.parametrize("sp", SEARCH_PARAMETERS, ids=[f"{sp['base'][0]}-{sp['code']}" for sp in SEARCH_PARAMETERS])
def test_every_cares_search_parameter_finds_the_examples_carrying_a_value(fhir, sp):
    loaded = _post_examples(fhir)
    cap = fhir.get("metadata").json()
    listed = {(rt["type"], p["name"]) for rt in cap["rest"][0]["resource"] for p in rt.get("searchParam", [])}
    assert {(b, sp["code"]) for b in sp["base"]} <= listed
    checked = 0
    for resource in loaded:
        if resource["resourceType"] not in sp["base"]:
            continue
        for value in fhirpathpy.evaluate(resource, sp["expression"], model=R4):
            wanted = _search_value(sp, value)
            if wanted is None:
                continue
            r = fhir.get(resource["resourceType"], params={sp["code"]: wanted, "_count": "500"})
            assert r.status_code == 200, r.text
            found = {e["resource"].get("id") for e in r.json().get("entry", [])}
            assert resource["id"] in found, (sp["code"], wanted, r.text[:800])
            checked += 1
    assert checked, f"no example carries a value for {sp['base']} {sp['code']}"
