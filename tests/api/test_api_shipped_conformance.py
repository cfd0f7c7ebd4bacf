"""Conformance content shipped with the server (profiles/data/ig, terminology/data/cares) is stored at
start through the API's update — readable, searchable, in force — and not rewritten when unchanged."""

from __future__ import annotations

import json

import httpx

from fhir_server.interactions import conformance
from tests.conftest import _server

SD_URL = "http://example.org/fhir/StructureDefinition/shipped-basic"


def _write(d, name: str, resource: dict) -> None:
    (d / name).write_text(json.dumps(resource))


def test_shipped_content_is_loaded_once_and_in_force(tmp_path, monkeypatch):
    ig = tmp_path / "ig"
    ig.mkdir()
    _write(ig, "sd.json", {
        "resourceType": "StructureDefinition", "id": "shipped-basic", "url": SD_URL, "name": "ShippedBasic",
        "status": "active", "kind": "resource", "abstract": False, "type": "Basic", "fhirVersion": "4.0.1",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Basic", "derivation": "constraint",
        "differential": {"element": [{"id": "Basic", "path": "Basic"},
                                     {"id": "Basic.subject", "path": "Basic.subject", "min": 1}]}})
    _write(ig, "bundle.json", {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "SearchParameter", "id": "basic-author-name", "url":
                      "http://example.org/fhir/SearchParameter/basic-created", "name": "created-on",
                      "status": "active", "description": "When created", "code": "created-on",
                      "base": ["Basic"], "type": "date",
                      "expression": "Basic.created"}},
        {"resource": {"resourceType": "ValueSet", "id": "shipped-vs", "url": "http://example.org/fhir/ValueSet/s",
                      "status": "active", "compose": {"include": [{"system": "urn:s", "concept": [{"code": "a"}]}]}}}]})
    monkeypatch.setattr(conformance, "SHIPPED_DIRS", (ig,))
    url = f"sqlite:///{tmp_path / 'shipped.sqlite3'}"
    for start in (1, 2):
        srv = _server(url)
        try:
            with httpx.Client(base_url=srv.base + "/") as c:
                sd = c.get("StructureDefinition/shipped-basic").json()
                assert sd["url"] == SD_URL and sd["meta"]["versionId"] == "1", (start, sd)  # not rewritten
                found = c.get("StructureDefinition", params={"url": SD_URL}).json()
                assert [e["resource"]["id"] for e in found["entry"]] == ["shipped-basic"]
                assert c.get("ValueSet/shipped-vs").status_code == 200
                # the shipped profile is enforced, the shipped SearchParameter searches
                bad = c.post("Basic", json={"resourceType": "Basic", "code": {"text": "x"},
                                            "meta": {"profile": [SD_URL]}})
                assert bad.status_code == 422 and "Basic.subject" in bad.text
                made = c.post("Basic", json={"resourceType": "Basic", "code": {"text": "x"},
                                             "created": f"201{start}-05-06"})
                assert made.status_code == 201
                hits = c.get("Basic", params={"created-on": f"201{start}-05-06"}).json()
                assert [e["resource"]["id"] for e in hits.get("entry", [])] == [made.json()["id"]]
        finally:
            srv.stop()
