"""Index rows of real third-party examples (HL7 US Core, FHIR spec via microsoft/fhir-server, Synthea)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_server.indexing import DATE_MAX, SearchParamRegistry, extract_index_rows

EXAMPLES = Path("/work/shared/fhir-examples")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(*args: int) -> int:
    return int((datetime(*args, tzinfo=UTC) - _EPOCH).total_seconds()) * 1_000_000


def load(name: str) -> dict[str, Any]:
    return orjson.loads((EXAMPLES / "examples" / name).read_bytes())


def rows(resource: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    return extract_index_rows(SearchParamRegistry.default(), resource)


def of(table_rows: list[tuple[Any, ...]], param: str) -> list[tuple[Any, ...]]:
    return [r[1:] for r in table_rows if r[0] == param]


def test_patient_name_birthdate_identifier_address() -> None:
    out = rows(load("uscore-patient-example.json"))
    assert of(out["date"], "birthdate") == [(us(1987, 2, 20), us(1987, 2, 21) - 1)]
    assert of(out["token"], "identifier") == [
        ("http://example.org/patient/identifiers", "1032702", "medical record number")]
    assert of(out["string"], "family") == [("shaw", "Shaw"), ("baxter", "Baxter")]
    assert of(out["string"], "given") == [("amy", "Amy"), ("v.", "V.")]  # de-duplicated across both names
    assert ("pharmd", "PharmD") in of(out["string"], "name")
    assert of(out["string"], "address-city") == [("mounds", "MOUNDS")]
    assert of(out["token"], "phone") == [(None, "555-555-5555", None)]  # telecom.where(system='phone')
    assert of(out["token"], "email") == [(None, "amy.shaw@example.com", None)]
    assert of(out["token"], "active") == [(None, "true", None)]
    assert of(out["token"], "deceased") == [(None, "false", None)]
    assert of(out["token"], "_id") == []  # _id and _lastUpdated are searched on the resource table
    assert of(out["uri"], "_profile") == [("http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|9.0.0",)]


def test_deceased_patient_has_deceased_date() -> None:
    out = rows(load("uscore-patient-deceased-example.json"))
    assert of(out["token"], "deceased") == [(None, "true", None)]
    assert of(out["date"], "death-date") == [(us(2022, 7, 22), us(2022, 7, 23) - 1)]


def test_synthea_patient_gender() -> None:
    bundle = orjson.loads(next((EXAMPLES / "synthea").glob("Liz_Conn_*.json")).read_bytes())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    out = rows(patient)
    assert of(out["token"], "gender") == [(None, "female", None)]
    assert of(out["string"], "family") == [("conn", "Conn"), ("rowe", "Rowe")]
    assert of(out["date"], "birthdate") == [(us(1986, 11, 28), us(1986, 11, 29) - 1)]


def test_careplan_subject_category_period() -> None:
    out = rows(load("uscore-careplan-ulcer-example.json"))
    assert of(out["reference"], "subject") == [("Patient", "example", None)]
    assert of(out["reference"], "patient") == [("Patient", "example", None)]
    assert of(out["reference"], "condition") == [("Condition", "condition-duodenal-ulcer", None)]
    assert of(out["token"], "category") == [("http://snomed.info/sct", "734163000", "care plan")]
    assert of(out["token"], "status") == [(None, "active", None)]
    assert of(out["date"], "date") == [(us(2025, 9, 27), DATE_MAX)]  # period.start only: open end


def test_observation_value_quantity_code_date() -> None:
    out = rows(load("uscore-weight.json"))
    assert of(out["quantity"], "value-quantity") == [("http://unitsofmeasure.org", "kg", 20.09414)]
    assert of(out["token"], "code") == [("http://loinc.org", "29463-7", "body weight"),
                                        (None, None, "weight")]  # CodeableConcept.text: its own row
    assert of(out["date"], "date") == [(us(1999, 7, 2), us(1999, 7, 3) - 1)]
    assert of(out["reference"], "patient") == [("Patient", "example", None)]


def test_observation_components() -> None:
    out = rows(load("uscore-blood-pressure.json"))
    assert of(out["token"], "component-code") == [("http://loinc.org", "8480-6", "systolic blood pressure"),
                                                 ("http://loinc.org", "8462-4", "diastolic blood pressure")]
    # UCUM code plus a code-less row for the human unit, so that value||mmHg matches too
    assert of(out["quantity"], "component-value-quantity") == [
        ("http://unitsofmeasure.org", "mm[Hg]", 109.0), (None, "mmHg", 109.0),
        ("http://unitsofmeasure.org", "mm[Hg]", 44.0), (None, "mmHg", 44.0)]
    assert "value-quantity" not in {r[0] for r in out["quantity"]}


def test_task_owner_status_authored_on() -> None:
    out = rows(load("ms-task-example1.json"))
    assert of(out["reference"], "owner") == [("Organization", "1832473e-2fe0-452d-abe9-3cdb9879522f", None)]
    assert of(out["reference"], "patient") == [("Patient", "example", None)]
    assert of(out["reference"], "focus") == [("ServiceRequest", "lipid", None)]
    assert of(out["token"], "status") == [(None, "in-progress", None)]
    assert of(out["token"], "business-status") == [(None, None, "waiting for specimen")]  # CodeableConcept text only
    # authoredOn 2016-10-31T08:25:05+10:00 is 22:25:05 UTC the day before
    assert of(out["date"], "authored-on") == [(us(2016, 10, 30, 22, 25, 5), us(2016, 10, 30, 22, 25, 6) - 1)]
    assert of(out["date"], "period") == [(us(2016, 10, 30, 22, 25, 5), DATE_MAX)]
    assert of(out["token"], "_tag") == [
        ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")]


def test_careteam_participants() -> None:
    out = rows(load("uscore-careteam-example.json"))
    assert of(out["reference"], "participant") == [
        ("Practitioner", "practitioner-1", None), ("Practitioner", "practitioner-2", None),
        ("Patient", "example", None), ("RelatedPerson", "shaw-niece", None)]
    assert of(out["reference"], "subject") == [("Patient", "example", None)]


def test_provenance_where_resolve_filters_targets() -> None:
    out = rows(load("ms-provenance-example.json"))
    assert of(out["reference"], "target") == [("Procedure", "example", None)]
    assert of(out["reference"], "patient") == []  # target.where(resolve() is Patient): the target is a Procedure
    assert of(out["reference"], "agent") == [("Practitioner", "xcda-author", None), ("Device", "software", None)]


def test_condition_onset_choice_and_metadata_date() -> None:
    res = load("uscore-condition-duodenal-ulcer-resolved.json")
    out = rows(res)
    assert res["onsetDateTime"] == "2016-08-10"
    assert res["meta"]["lastUpdated"] and of(out["date"], "_lastUpdated") == []
    assert of(out["date"], "onset-date") == [(us(2016, 8, 10), us(2016, 8, 11) - 1)]
    assert of(out["token"], "code") == [("http://snomed.info/sct", "51868009", "ulcer of duodenum (disorder)"),
                                        (None, None, "active duodenal ulcer")]


def test_location_and_coverage() -> None:
    loc = rows(load("uscore-location-hospital.json"))
    assert of(loc["string"], "name") == [("holy family hospital", "Holy Family Hospital")]
    assert of(loc["reference"], "organization") == [("Organization", "holy-healthcare", None)]
    cov = rows(load("uscore-coverage-example.json"))
    assert of(cov["reference"], "payor") == [("Organization", "acme-payer", None)]
    assert of(cov["token"], "identifier") == [("http://example.org/fhir/memberidentifier", "88800933501", None)]


def _all_resources() -> list[dict[str, Any]]:
    out = [orjson.loads(p.read_bytes()) for p in sorted((EXAMPLES / "examples").glob("*.json"))]
    for p in sorted((EXAMPLES / "synthea").glob("*.json")):
        bundle = orjson.loads(p.read_bytes())
        out.append(bundle)
        out.extend(e["resource"] for e in bundle["entry"])
    return out


def test_every_example_extracts_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    resources = _all_resources()
    assert len(resources) > 300
    caplog.set_level(logging.ERROR, logger="fhir_server.indexing")
    for res in resources:
        out = rows(res)
        assert out, res["resourceType"]
        for table, table_rows in out.items():
            assert table_rows and len(table_rows) == len(set(table_rows)), (res["resourceType"], table)
            for r in table_rows:
                assert all(len(v) <= 255 for v in r if isinstance(v, str))
    assert not caplog.records


def test_synthea_urn_references_are_kept_as_urls() -> None:
    bundle = orjson.loads(next((EXAMPLES / "synthea").glob("Lupe_Little_*.json")).read_bytes())
    obs = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    ref = obs["subject"]["reference"]
    assert ref.startswith("urn:uuid:")
    out = rows(obs)
    assert of(out["reference"], "subject") == [(None, None, ref)]
    assert of(out["reference"], "patient") == []  # a urn cannot be told to be a Patient
