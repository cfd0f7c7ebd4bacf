"""Helpers for the live-HTTP search tests (the ``fhir`` fixture: one server per backend)."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def make(fhir, resource: dict) -> str:
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def get(fhir, path: str, params: dict | list | None = None) -> dict:
    r = fhir.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def found(fhir, path: str, params: dict | list) -> list[str]:
    """The ids of all matches (following next links), sorted."""
    return sorted(all_ids(fhir, path, params))


def all_ids(fhir, path: str, params: dict | list, mode: str = "match") -> list[str]:
    """The ids of all matches in page order, following next links."""
    page = get(fhir, path, params)
    out = ids(page, mode)
    for _ in range(200):
        nxt = link(page, "next")
        if nxt is None:
            return out
        page = get(fhir, nxt)
        out += ids(page, mode)
    raise AssertionError("too many pages")


def link(bundle: dict, relation: str) -> str | None:
    urls = [x["url"] for x in bundle.get("link", []) if x["relation"] == relation]
    return urls[0] if urls else None


def error(fhir, path: str, params: dict | list, status: int = 400) -> dict:
    r = fhir.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    return body
