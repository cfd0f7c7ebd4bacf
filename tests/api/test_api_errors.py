"""Bad input gets an OperationOutcome with the right 4xx status — never a 500, never a partial write."""

from __future__ import annotations

import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def assert_oo(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    if code is not None:
        assert code in {i["code"] for i in oo["issue"]}, oo
    return oo


def count_type(fhir, rtype: str, **params) -> int:
    return fhir.get(rtype, params={**params, "_total": "accurate", "_count": "0"}).json()["total"]


def test_malformed_json(fhir, tag):
    assert_oo(fhir.post("Patient", content=b'{"resourceType": "Patient",', headers=FHIR_JSON), 400, "invalid")
    assert_oo(fhir.post("Patient", content=b"", headers=FHIR_JSON), 400)
    assert_oo(fhir.post("Patient", content=b"[1,2]", headers=FHIR_JSON), 400)


def test_wrong_resource_type_in_body(fhir):
    oo = assert_oo(fhir.post("Patient", json={"resourceType": "Observation", "status": "final",
                                               "code": {"text": "x"}}, headers=FHIR_JSON), 400)
    assert "Observation" in oo["issue"][0]["diagnostics"]


def test_put_id_mismatch_and_missing(fhir, tag):
    assert_oo(fhir.put(f"Patient/a-{tag}", json={"resourceType": "Patient", "id": f"b-{tag}"}), 400)
    assert_oo(fhir.put(f"Patient/a-{tag}", json={"resourceType": "Patient"}), 400)
    assert fhir.get(f"Patient/a-{tag}").status_code == 404


def test_unknown_resource_type(fhir):
    assert_oo(fhir.get("Patientt/1"), 404)
    assert_oo(fhir.get("NotAType"), 404)
    assert_oo(fhir.post("Foo", json={"resourceType": "Foo"}, headers=FHIR_JSON), 404)


def test_invalid_element_names_the_element(fhir, tag):
    body = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
            "subject": {"reference": "Patient/x"}, "identifier": [{"value": tag}],
            "activity": [{"detail": {"status": "scheduled", "performer": [{"reference": 5}]}}]}
    oo = assert_oo(fhir.post("CarePlan", json=body, headers=FHIR_JSON), 400)
    assert any("CarePlan.activity[0].detail.performer[0].reference" in e for i in oo["issue"]
               for e in i.get("expression", []))
    oo = assert_oo(fhir.post("Patient", json={"resourceType": "Patient", "favouriteColour": "blue"},
                             headers=FHIR_JSON), 400)
    assert any("favouriteColour" in e for i in oo["issue"] for e in i.get("expression", []))
    assert_oo(fhir.post("Patient", json={"resourceType": "Patient", "birthDate": "2020-13-45"},
                        headers=FHIR_JSON), 400)
    assert count_type(fhir, "CarePlan", identifier=tag) == 0


def test_body_too_large(fhir):
    big = {"resourceType": "Patient", "name": [{"text": "x" * (3 * 1024 * 1024)}]}
    assert_oo(fhir.post("Patient", json=big, headers=FHIR_JSON), 413)


def test_too_deeply_nested(fhir):
    deep: dict = {"url": "urn:x", "valueString": "y"}
    for _ in range(60):
        deep = {"url": "urn:x", "extension": [deep]}
    assert_oo(fhir.post("Patient", json={"resourceType": "Patient", "extension": [deep]}, headers=FHIR_JSON), 400)
    nested = b"[" * 5000 + b"]" * 5000
    assert_oo(fhir.post("Patient", content=nested, headers=FHIR_JSON), 400)


@pytest.mark.parametrize("ctype", ["application/fhir+xml", "application/xml", "text/plain"])
def test_unsupported_media_type(fhir, ctype):
    assert_oo(fhir.post("Patient", content=b"<Patient/>", headers={"Content-Type": ctype}), 415)


def test_method_not_allowed(fhir):
    assert_oo(fhir.post("metadata", json={}), 405)
    assert_oo(fhir.delete("Patient/_history"), 405)


def test_bad_headers(fhir, tag):
    pid = fhir.post("Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).json()["id"]
    assert_oo(fhir.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid},
                       headers={"If-Match": "banana"}), 400)
    assert_oo(fhir.get(f"Patient/{pid}", headers={"If-Modified-Since": "yesterday"}), 400)


def test_sql_looking_values_are_just_values(fhir, tag):
    evil = f"x'); DROP TABLE resource; -- {tag}"
    r = fhir.post("Patient", json={"resourceType": "Patient", "name": [{"family": evil}]}, headers=FHIR_JSON)
    assert r.status_code == 201
    found = fhir.get("Patient", params={"family": evil}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [r.json()["id"]]
    assert fhir.get("metadata").status_code == 200


def test_values_the_database_cannot_hold_are_400_not_500(fhir, tag):
    long_id = "x" * 200
    r = fhir.post("CarePlan", json={"resourceType": "CarePlan", "status": "active", "intent": "plan",
                                    "identifier": [{"value": tag}], "subject": {"reference": f"Patient/{long_id}"},
                                    "title": "y" * 5000}, headers=FHIR_JSON)
    assert r.status_code in (201, 400), r.text
    nul = fhir.post("Patient", content=b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}',
                    headers=FHIR_JSON)
    assert_oo(nul, 400)
    assert_oo(fhir.get("Patient/x/_history/99999999999999999999999"), 404)
    assert fhir.get("Patient", params={"_id": "y" * 300}).status_code == 200
    huge = fhir.post("Observation", content=b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                     b'"valueQuantity":{"value":1e400}}', headers=FHIR_JSON)
    assert huge.status_code == 400
    big_int = fhir.post("Observation", content=b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                        b'"valueInteger":123456789012345678901234567890}', headers=FHIR_JSON)
    assert big_int.status_code == 400
    assert fhir.get("Patient", params={"birthdate": "9999-12-31"}).status_code == 200
    assert fhir.get("Patient", params={"_lastUpdated": "gt0001-01-01"}).status_code == 200
    for bad in ("ab", "-1", "x" * 100):
        assert fhir.get("Patient", params={"_cursor": bad}).status_code == 400


def test_logs_carry_no_resource_content_or_search_values(fhir, tag, caplog):
    import logging

    secret = f"Zzyzx{tag}"
    with caplog.at_level(logging.INFO, logger="cares_fhir"):
        fhir.post("Patient", json={"resourceType": "Patient", "name": [{"family": secret}]}, headers=FHIR_JSON)
        fhir.get("Patient", params={"family": secret})
        fhir.post("Patient", json={"resourceType": "Patient", "name": [{"family": secret}], "bad": 1},
                  headers=FHIR_JSON)
        fhir.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "name": [{"family": secret}], "birthDate": "x"},
             "request": {"method": "POST", "url": "Patient"}}]}, headers=FHIR_JSON)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert any("search-type" in r.getMessage() for r in caplog.records)  # the access log did run
    assert secret.lower() not in logged.lower()
