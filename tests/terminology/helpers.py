"""Code systems and value sets the terminology tests define themselves (urls unique per test via ``tag``)."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SCT = "http://snomed.info/sct"


def cs_url(tag: str) -> str:
    return f"http://example.org/fhir/CodeSystem/animals-{tag}"


def vs_url(tag: str, name: str) -> str:
    return f"http://example.org/fhir/ValueSet/{name}-{tag}"


def animals(tag: str) -> dict:
    """animal > (mammal > (dog > puppy [by parent property], cat), bird > parrot); rock."""
    return {
        "resourceType": "CodeSystem", "url": cs_url(tag), "version": "1.0", "name": "Animals", "status": "active",
        "content": "complete", "hierarchyMeaning": "is-a", "caseSensitive": True,
        "property": [{"code": "legs", "type": "integer"}, {"code": "color", "type": "code"},
                     {"code": "parent", "type": "code"}],
        "concept": [
            {"code": "animal", "display": "Animal", "concept": [
                {"code": "mammal", "display": "Mammal", "designation": [{"language": "de", "value": "Säugetier"}],
                 "concept": [
                     {"code": "dog", "display": "Dog",
                      "designation": [{"language": "de", "value": "Hund"}, {"language": "fr", "value": "Chien"}],
                      "property": [{"code": "legs", "valueInteger": 4}, {"code": "color", "valueCode": "brown"}]},
                     {"code": "cat", "display": "Cat", "designation": [{"language": "de", "value": "Katze"}],
                      "property": [{"code": "color", "valueCode": "black"}]}]},
                {"code": "bird", "display": "Bird", "concept": [
                    {"code": "parrot", "display": "Parrot", "property": [{"code": "color", "valueCode": "green"}]}]}]},
            {"code": "rock", "display": "Rock"},
            {"code": "puppy", "display": "Puppy", "property": [{"code": "parent", "valueCode": "dog"}]},
        ]}


def value_set(tag: str, name: str, *include: dict, exclude: list[dict] | None = None) -> dict:
    compose: dict = {"include": list(include)}
    if exclude:
        compose["exclude"] = exclude
    return {"resourceType": "ValueSet", "url": vs_url(tag, name), "name": name.title().replace("-", ""),
            "status": "active", "compose": compose}


def value_sets(tag: str) -> list[dict]:
    s = cs_url(tag)
    return [
        value_set(tag, "all", {"system": s}),
        value_set(tag, "mammals", {"system": s, "filter": [{"property": "concept", "op": "is-a", "value": "mammal"}]}),
        value_set(tag, "below-mammal", {"system": s, "filter": [{"property": "concept", "op": "descendent-of",
                                                                 "value": "mammal"}]}),
        value_set(tag, "not-animal", {"system": s, "filter": [{"property": "concept", "op": "is-not-a",
                                                               "value": "animal"}]}),
        value_set(tag, "brown", {"system": s, "filter": [{"property": "color", "op": "=", "value": "brown"}]}),
        value_set(tag, "regex", {"system": s, "filter": [{"property": "code", "op": "regex", "value": "c.*|p.*"}]}),
        value_set(tag, "in", {"system": s, "filter": [{"property": "concept", "op": "in", "value": "dog,rock"}]}),
        value_set(tag, "listed", {"system": s, "concept": [{"code": "cat"}, {"code": "rock", "display": "Stone"},
                                                           {"code": "nope"}]}),
        value_set(tag, "composite", {"valueSet": [vs_url(tag, "mammals")]},
                  {"system": SCT, "concept": [{"code": "44054006", "display": "Diabetes mellitus type 2"}]},
                  exclude=[{"system": s, "concept": [{"code": "cat"}]}]),
        value_set(tag, "intersection", {"valueSet": [vs_url(tag, "mammals"), vs_url(tag, "regex")]}),
        value_set(tag, "loop-a", {"valueSet": [vs_url(tag, "loop-b")]}),
        value_set(tag, "loop-b", {"valueSet": [vs_url(tag, "loop-a")]}),
        value_set(tag, "sct-all", {"system": SCT}),
        value_set(tag, "sct-or-animals", {"system": SCT}, {"system": s, "concept": [{"code": "dog"}]}),
        value_set(tag, "missing-vs", {"valueSet": [vs_url(tag, "does-not-exist")]}),
    ]


def post(fhir, resource: dict) -> dict:
    r = fhir.post(resource["resourceType"], json=resource, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return r.json()


def params(body: dict) -> dict:
    """A Parameters resource as {name: value} (last one wins; parts as lists)."""
    out: dict = {}
    for p in body.get("parameter", []):
        value = next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
        if p["name"] in ("designation", "property"):
            out.setdefault(p["name"], []).append(value)
        else:
            out[p["name"]] = value
    return out


def codes(expansion_vs: dict) -> list[str]:
    return [c["code"] for c in expansion_vs["expansion"].get("contains", [])]
