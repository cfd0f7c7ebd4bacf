"""AuditEvents of the authorization server (issue 7 §8): token issue, refused token requests, logins, failed logins
and consent decisions name the patient of the launch (an entity ``Patient/<id>`` with role 1 Patient, as the FHIR
interactions' events do) and, for failures, the OAuth error code in ``outcomeDesc`` — never the code, token,
secret or password. Found through the FHIR API with an auditor (``system/AuditEvent.rs``) token; both backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from fhir_server.audit.event import CLIENT_SYSTEM
from tests.audit.support import poll_events
from tests.auth.oauth_support import (
    PASSWORD,
    add_user,
    auth_params,
    browser,
    decide,
    ehr_launch,
    exchange,
    get_code,
    login,
    pkce,
    public_client,
    query,
    root,
    start,
    uid,
)
from tests.conftest import LiveServer, mint

SCOPE = "launch openid fhirUser offline_access patient/*.rs"
_IHE = "urn:ihe:event-type-code"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _events(server: LiveServer, query_: str, until: Callable[[list[dict[str, Any]]], bool] = bool,
            wait: float = 5.0) -> list[dict[str, Any]]:
    """AuditEvents matching ``query_``, searched with an auditor token (polled, see ``poll_events``)."""
    token = mint(server, "system/AuditEvent.rs", client_id="auditor")
    with httpx.Client(base_url=server.base + "/", timeout=30,
                      headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}) as c:
        return poll_events(c, query_, until, wait)


def _of_client(events: list[dict[str, Any]], client_id: str) -> list[dict[str, Any]]:
    return [e for e in events if any(a.get("who", {}).get("identifier") == {"system": CLIENT_SYSTEM,
                                                                              "value": client_id}
                                     for a in e["agent"])]


def _patient_entities(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in event.get("entity", []) if e.get("what", {}).get("reference", "").startswith("Patient/")]


def _assert_patient(event: dict[str, Any], pid: str) -> None:
    [ent] = _patient_entities(event)
    assert ent == {"what": {"reference": f"Patient/{pid}"},
                   "type": {"system": "http://hl7.org/fhir/resource-types", "code": "Patient"},
                   "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                            "display": "Patient"}}


def _patient(admin: httpx.Client) -> str:
    pid = uid("aud")
    r = admin.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid, "name": [{"family": "Audit"}]})
    assert r.status_code in (200, 201), r.text
    return pid


def _since() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 2))


def _launch_code(server: LiveServer, admin: httpx.Client) -> tuple[str, str, str, str, str]:
    """An EHR launch for a new patient, signed in and approved: (patient id, client id, code, PKCE verifier,
    launch value)."""
    pid = _patient(admin)
    client_id = public_client(server, SCOPE)
    user = add_user(server, "Practitioner/audit-doc")
    launch = ehr_launch(server, patient=pid, fhirUser="Practitioner/audit-doc")
    verifier, challenge = pkce()
    code = get_code(server, auth_params(server, client_id, SCOPE, challenge, launch=launch), user)
    return pid, client_id, code, verifier, launch


def test_ehr_launch_token_events_name_the_patient(auth_server: LiveServer, admin: httpx.Client) -> None:
    pid, client_id, code, verifier, launch = _launch_code(auth_server, admin)
    r = exchange(auth_server, client_id, code, verifier)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["patient"] == pid
    # the token issue: IUA "Get Access Token", success, the launch patient as an entity
    [issued] = _events(auth_server, f"patient=Patient/{pid}&subtype={_IHE}|ITI-71")
    assert issued["outcome"] == "0" and "outcomeDesc" not in issued
    _assert_patient(issued, pid)
    assert _of_client([issued], client_id)
    # the login and the consent carry the launch patient too
    logins = _events(auth_server, f"patient=Patient/{pid}&subtype={_DCM}|110122", until=lambda ev: len(ev) >= 2)
    assert len(logins) == 2 and all(e["outcome"] == "0" for e in logins)
    for e in logins:
        _assert_patient(e, pid)
    # a refresh is audited with the grant's patient as well
    r = httpx.post(f"{root(auth_server)}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": client_id}, timeout=30)
    assert r.status_code == 200, r.text
    assert len(_events(auth_server, f"patient=Patient/{pid}&subtype={_IHE}|ITI-71",
                       until=lambda ev: len(ev) >= 2)) == 2
    # nothing secret in any of them
    text = orjson.dumps(_events(auth_server, f"patient=Patient/{pid}", until=lambda ev: len(ev) >= 4)).decode()
    for secret in (code, verifier, t["access_token"], t["refresh_token"], t["id_token"], launch, PASSWORD):
        assert secret not in text


def test_bad_code_exchange_records_the_error_code_not_the_code(auth_server: LiveServer) -> None:
    client_id = public_client(auth_server, SCOPE)
    since = _since()
    bogus = "not-a-code-" + uid("x")
    r = exchange(auth_server, client_id, bogus, "v" * 50)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    events = _of_client(_events(auth_server, f"subtype={_IHE}|ITI-71&outcome=4&date=ge{since}",
                                until=lambda ev: bool(_of_client(ev, client_id))), client_id)
    [denied] = events
    assert denied["outcome"] == "4"
    assert denied["outcomeDesc"] == "HTTP 400, error invalid_grant"
    assert bogus not in orjson.dumps(denied).decode() and "v" * 50 not in orjson.dumps(denied).decode()
    assert not _patient_entities(denied)  # an unknown code names no patient


def test_wrong_verifier_names_the_codes_patient(auth_server: LiveServer, admin: httpx.Client) -> None:
    """A refused exchange of a real code (bad PKCE verifier) names the patient the code was for."""
    pid, client_id, code, _, _ = _launch_code(auth_server, admin)
    wrong, _ = pkce()
    r = exchange(auth_server, client_id, code, wrong)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    [denied] = _events(auth_server, f"patient=Patient/{pid}&subtype={_IHE}|ITI-71&outcome=4")
    assert denied["outcomeDesc"] == "HTTP 400, error invalid_grant"
    _assert_patient(denied, pid)
    text = orjson.dumps(denied).decode()
    assert code not in text and wrong not in text


def test_failed_login_and_denied_consent(auth_server: LiveServer, admin: httpx.Client) -> None:
    pid = _patient(admin)
    client_id = public_client(auth_server, SCOPE)
    user = add_user(auth_server, "Practitioner/audit-doc")
    launch = ehr_launch(auth_server, patient=pid, fhirUser="Practitioner/audit-doc")
    _, challenge = pkce()
    params = auth_params(auth_server, client_id, SCOPE, challenge, launch=launch)
    with browser(auth_server) as b:
        assert start(b, params).status_code == 303
        assert login(b, user, "wrong password 123").status_code == 401
        assert login(b, user).status_code == 303
        r = decide(b, "deny")
    assert r.status_code == 302 and query(r.headers["location"])["error"] == "access_denied"
    failed = _events(auth_server, f"patient=Patient/{pid}&outcome=4", until=lambda ev: len(ev) >= 2)
    by_subtype = {e["subtype"][0]["code"]: e for e in failed}
    assert len(failed) == 2 and set(by_subtype) == {"110122"}
    descs = sorted(e["outcomeDesc"] for e in failed)
    assert descs == ["HTTP 401, error invalid_credentials", "HTTP 403, error access_denied"]
    for e in failed:
        _assert_patient(e, pid)
        assert "wrong password 123" not in orjson.dumps(e).decode()
