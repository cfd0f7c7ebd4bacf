"""Interop proof (issue 7): the unmodified Python SMART client ``fhirclient`` completes a launch and reads a CarePlan.

The library finds the OAuth endpoints itself (CapabilityStatement ``rest.security`` oauth-uris), builds the
authorize URL (PKCE S256, ``aud``, ``state``), exchanges the code, refreshes the token and signs its FHIR
requests; only the person's part — log in, approve, pick the patient — is played by ``smart_pages`` with httpx,
and the EHR's part (``POST /auth/launch`` with a ``system/launch`` token) by the test. Standalone launch (patient
picker, refresh) and EHR launch (launch context, id_token, patient binding).
Runs on SQLite and PostgreSQL (``auth_server``).
"""

from __future__ import annotations

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.careplan import CarePlan
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import mint
from tests.interop.conftest import SmartWorld
from tests.interop.smart_pages import authorize_in_browser

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never requested: the browser stand-in stops at the redirect


def _client(world: SmartWorld, client_id: str, scope: str, launch: str | None = None) -> smart_client.FHIRClient:
    settings = {"app_id": client_id, "api_base": world.server.base, "redirect_uri": REDIRECT_URI, "scope": scope}
    if launch is not None:
        settings["launch_token"] = launch
    return smart_client.FHIRClient(settings=settings)


def _browser() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=30)


def test_python_fhirclient_standalone_launch_reads_careplan(smart_world: SmartWorld) -> None:
    w = smart_world
    client_id = w.register_client(REDIRECT_URI, "launch/patient openid fhirUser offline_access patient/*.rs")
    smart = _client(w, client_id, "openid fhirUser offline_access patient/*.rs")  # + launch/patient (library)
    assert not smart.ready

    url = smart.authorize_url
    assert url, "no authorize URL: the CapabilityStatement's rest.security lacks the SMART oauth-uris extension"
    assert "code_challenge_method=S256" in url and "aud=" in url
    with _browser() as browser:
        callback = authorize_in_browser(browser, url, REDIRECT_URI, username=w.username, password=w.password,
                                        patient=w.patient_id)
    smart.handle_callback(callback)

    assert smart.ready
    assert smart.patient_id == w.patient_id  # the picked patient, from the token response
    plan = CarePlan.read(w.careplan_id, smart.server)
    assert plan.id == w.careplan_id
    assert plan.subject.reference == f"Patient/{w.patient_id}"
    assert plan.title == w.careplan_title
    assert smart.patient is not None and smart.patient.id == w.patient_id  # Patient read by the library

    # offline_access: the library refreshes with the rotated refresh token and keeps reading
    first_token = smart.server.auth.access_token
    assert smart.reauthorize()
    assert smart.server.auth.access_token != first_token
    assert CarePlan.read(w.careplan_id, smart.server).id == w.careplan_id


def test_python_fhirclient_ehr_launch_reads_careplan(smart_world: SmartWorld, admin: httpx.Client) -> None:
    w = smart_world
    client_id = w.register_client(REDIRECT_URI, "launch openid fhirUser patient/*.rs")
    launch = _ehr_launch(w)
    smart = _client(w, client_id, "openid fhirUser patient/*.rs", launch=launch)  # + launch (library)

    with _browser() as browser:
        callback = authorize_in_browser(browser, smart.authorize_url, REDIRECT_URI, username=w.username,
                                        password=w.password)
    smart.handle_callback(callback)

    assert smart.patient_id == w.patient_id  # from the EHR's launch context, no picker
    # openid fhirUser: an id_token signed with a key of the server's JWKS, naming the signed-in user
    root = w.server.base.rsplit("/fhir", 1)[0]
    jwks = KeySet.import_key_set(httpx.get(f"{root}/auth/jwks", timeout=30).json())
    claims = jwt.decode(smart.launch_context["id_token"], jwks, algorithms=["RS256", "ES384"]).claims
    assert claims["fhirUser"].endswith(f"Practitioner/{w.practitioner_id}")
    assert claims["aud"] in (client_id, [client_id]) and claims["iss"] == w.server.base
    plan = CarePlan.read(w.careplan_id, smart.server)
    assert (plan.id, plan.subject.reference) == (w.careplan_id, f"Patient/{w.patient_id}")
    # the token is bound to the launch patient: another child's data is not there for it
    other = admin.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Other"}]},
                       headers={"Content-Type": "application/fhir+json"})
    assert other.status_code == 201, other.text
    with pytest.raises(FHIRNotFoundException):
        Patient.read(other.json()["id"], smart.server)


def _ehr_launch(w: SmartWorld) -> str:
    """The EHR's part: ``POST /auth/launch`` with its ``system/launch`` token; the opaque ``launch`` value."""
    ehr_token = mint(w.server, "system/launch", client_id="interop-ehr")
    root = w.server.base.rsplit("/fhir", 1)[0]
    context = {"patient": w.patient_id, "fhirUser": f"Practitioner/{w.practitioner_id}"}
    r = httpx.post(f"{root}/auth/launch", json=context, headers={"Authorization": f"Bearer {ehr_token}"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["launch"]
