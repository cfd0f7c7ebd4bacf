"""End-to-end SMART flows through HTTP (issue 7 points 2, 5, 6): EHR launch, standalone launch with the patient
picker, refresh token rotation, backend services, introspection and revocation; each on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.auth.oauth_support import (
    REDIRECT,
    add_user,
    auth_params,
    backend_client,
    backend_token,
    browser,
    csrf,
    ehr_launch,
    exchange,
    fhir_get,
    get_code,
    login,
    pkce,
    public_client,
    query,
    root,
    secret_client,
    start,
    uid,
)


def _patient(admin: httpx.Client, family: str = "Tester") -> str:
    pid = uid("pat")
    r = admin.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                          "name": [{"family": family, "given": ["Kid"]}]})
    assert r.status_code in (200, 201), r.text
    return pid


def _id_token_claims(server, id_token: str) -> dict:
    jwks = httpx.get(f"{root(server)}/auth/jwks", timeout=30).json()
    tok = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert tok.header["alg"] == "RS256" and tok.header["kid"]
    return tok.claims


def test_ehr_launch(auth_server, admin):
    pid = _patient(admin)
    scope = "launch openid fhirUser offline_access patient/*.rs"
    client_id = public_client(auth_server, scope)
    user = add_user(auth_server, "Practitioner/ehr-doc")
    launch = ehr_launch(auth_server, patient=pid, encounter="enc-1", fhirUser="Practitioner/ehr-doc",
                        intent="reconcile-medications", fhirContext=[{"reference": "CarePlan/cp-1"}],
                        need_patient_banner=False)
    verifier, challenge = pkce()
    params = auth_params(auth_server, client_id, scope, challenge, launch=launch, nonce="n-123")
    code = get_code(auth_server, params, user)
    r = exchange(auth_server, client_id, code, verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    t = r.json()
    assert t["token_type"] == "Bearer" and t["expires_in"] > 0
    assert set(t["scope"].split()) == set(scope.split())
    assert t["patient"] == pid and t["encounter"] == "enc-1"
    assert t["need_patient_banner"] is False
    assert t["smart_style_url"].startswith("http")
    assert t["fhirContext"] == [{"reference": "CarePlan/cp-1"}]
    assert t["intent"] == "reconcile-medications"
    assert t["refresh_token"]
    claims = _id_token_claims(auth_server, t["id_token"])
    assert claims["iss"] == auth_server.base and claims["aud"] == client_id and claims["nonce"] == "n-123"
    assert claims["fhirUser"] == f"{auth_server.base}/Practitioner/ehr-doc"
    assert claims["sub"] == user
    # the token works on the FHIR endpoint, for the launch patient
    r = fhir_get(auth_server, f"Patient/{pid}", t["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == pid


def test_ehr_launch_context_created_by_an_ehr_client(auth_server, admin):
    pid = _patient(admin)
    ehr_id, key = backend_client(auth_server, "system/launch")
    tok = backend_token(auth_server, ehr_id, key, "system/launch")
    assert tok.status_code == 200, tok.text
    r = httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": pid, "fhirUser": "Practitioner/ehr-doc"},
                   headers={"Authorization": f"Bearer {tok.json()['access_token']}"}, timeout=30)
    assert r.status_code == 201, r.text
    launch = r.json()["launch"]
    # without the launch scope: 403; bad body: 400; no token: 401
    other_id, other_key = backend_client(auth_server, "system/Patient.rs")
    plain = backend_token(auth_server, other_id, other_key, "system/Patient.rs").json()["access_token"]
    assert httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": pid},
                      headers={"Authorization": f"Bearer {plain}"}, timeout=30).status_code == 403
    assert httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": 5},
                      headers={"Authorization": f"Bearer {tok.json()['access_token']}"},
                      timeout=30).json()["error"] == "invalid_request"
    assert httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": pid}, timeout=30).status_code == 401

    scope = "launch patient/Patient.rs"
    client_id = public_client(auth_server, scope)
    user = add_user(auth_server, "Practitioner/ehr-doc")
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, scope, challenge, launch=launch), user)
    t = exchange(auth_server, client_id, code, verifier).json()
    assert t["patient"] == pid
    assert "refresh_token" not in t and "id_token" not in t  # neither offline_access nor openid asked


def test_standalone_launch_with_patient_picker(auth_server, admin):
    pid = _patient(admin, "Picked")
    scope = "launch/patient openid fhirUser patient/*.rs"
    client_id = public_client(auth_server, scope)
    user = add_user(auth_server, "Practitioner/coord-1", ["care-coordinator"])
    verifier, challenge = pkce()
    params = auth_params(auth_server, client_id, scope, challenge)
    with browser(auth_server) as b:
        r = start(b, params, method="POST")  # authorize-post
        assert r.status_code == 303
        assert login(b, user).status_code == 303
        r = b.get("/auth/consent")
        assert r.status_code == 303 and r.headers["location"].endswith("/auth/pick")
        pick = b.get("/auth/pick")
        assert f'<button type="submit" name="patient" value="{pid}">' in pick.text
        assert "Kid Picked" in pick.text
        # a patient outside the list, or no CSRF token: refused
        assert b.post("/auth/pick", data={"patient": "nobody", "csrf": csrf(pick.text)}).status_code == 403
        assert b.post("/auth/pick", data={"patient": pid}).status_code == 400
        assert b.post("/auth/pick", data={"patient": pid, "csrf": csrf(pick.text)}).status_code == 303
        page = b.get("/auth/consent")
        assert page.status_code == 200 and pid in page.text and "patient/*.rs" in page.text
        r = b.post("/auth/consent", data={"decision": "approve", "csrf": csrf(page.text)})
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert q["state"] == params["state"]
    t = exchange(auth_server, client_id, q["code"], verifier).json()
    assert t["patient"] == pid
    assert _id_token_claims(auth_server, t["id_token"])["fhirUser"] == f"{auth_server.base}/Practitioner/coord-1"
    assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 200


def test_standalone_patient_user_gets_own_record(auth_server, admin):
    pid = _patient(admin)
    scope = "launch/patient patient/*.rs"
    client_id = public_client(auth_server, scope)
    user = add_user(auth_server, f"Patient/{pid}")
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, scope, challenge), user)  # no picker
    assert exchange(auth_server, client_id, code, verifier).json()["patient"] == pid


def test_refresh_token_rotation(auth_server, admin):
    pid = _patient(admin)
    scope = "launch/patient offline_access patient/*.rs"
    client_id, secret = secret_client(auth_server, scope)
    user = add_user(auth_server, f"Patient/{pid}")
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, scope, challenge), user)
    url = f"{root(auth_server)}/auth/token"
    r = httpx.post(url, data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                              "code_verifier": verifier}, auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    first = r.json()
    # refresh: new access and refresh tokens, context kept
    r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                   auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert second["patient"] == pid and set(second["scope"].split()) == set(scope.split())
    assert fhir_get(auth_server, f"Patient/{pid}", second["access_token"]).status_code == 200
    # widening the scope is refused; narrowing is allowed
    r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"],
                              "scope": "offline_access user/*.cruds"}, auth=(client_id, secret), timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"],
                              "scope": "offline_access patient/Patient.rs"}, auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    third = r.json()
    assert third["scope"] == "offline_access patient/Patient.rs"
    # the rotated (old) refresh token is refused, and using it again ends the whole grant
    r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                   auth=(client_id, secret), timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert fhir_get(auth_server, f"Patient/{pid}", third["access_token"]).status_code == 401


def test_backend_services(auth_server, admin):
    pid = _patient(admin)
    client_id, key = backend_client(auth_server, "system/Patient.rs system/Observation.rs")
    r = backend_token(auth_server, client_id, key, "system/Patient.rs system/Encounter.rs user/*.rs")
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["scope"] == "system/Patient.rs"  # narrower than asked: only system/ scopes the client may have
    assert t["token_type"] == "Bearer" and "refresh_token" not in t and "id_token" not in t
    assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 200
    # ES384 works too
    es_id, es_key = backend_client(auth_server, "system/*.rs", alg="ES384")
    r = backend_token(auth_server, es_id, es_key, "system/Patient.rs")
    assert r.status_code == 200, r.text
    # nothing grantable: invalid_scope
    r = backend_token(auth_server, client_id, key, "user/*.rs")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_introspection(auth_server, admin):
    pid = _patient(admin)
    client_id, secret = secret_client(auth_server, "launch/patient patient/*.rs")
    user = add_user(auth_server, f"Patient/{pid}")
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, "launch/patient patient/*.rs", challenge), user)
    token = httpx.post(f"{root(auth_server)}/auth/token", auth=(client_id, secret), timeout=30, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier}).json()["access_token"]
    url = f"{root(auth_server)}/auth/introspect"
    r = httpx.post(url, data={"token": token}, auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is True and body["client_id"] == client_id and body["patient"] == pid
    assert body["scope"] == "launch/patient patient/*.rs" and body["sub"] == user
    assert body["fhirUser"] == f"{auth_server.base}/Patient/{pid}" and body["token_type"] == "Bearer"
    assert body["exp"] > 0
    assert httpx.post(url, data={"token": "no-such-token"}, auth=(client_id, secret),
                      timeout=30).json() == {"active": False}
    # a backend service with a system/ scope may introspect with its bearer token
    sys_id, key = backend_client(auth_server, "system/Patient.rs")
    bearer = backend_token(auth_server, sys_id, key, "system/Patient.rs").json()["access_token"]
    r = httpx.post(url, data={"token": token}, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
    assert r.json()["active"] is True
    # unauthenticated, a wrong secret or a non-system bearer token: 401
    assert httpx.post(url, data={"token": token}, timeout=30).status_code == 401
    assert httpx.post(url, data={"token": token}, auth=(client_id, "wrong"), timeout=30).status_code == 401
    r = httpx.post(url, data={"token": token}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_revocation(auth_server, admin):
    pid = _patient(admin)
    scope = "launch/patient offline_access patient/*.rs"
    client_id = public_client(auth_server, scope)
    user = add_user(auth_server, f"Patient/{pid}")
    verifier, challenge = pkce()
    t = exchange(auth_server, client_id, get_code(auth_server, auth_params(auth_server, client_id, scope, challenge),
                                                  user), verifier).json()
    url = f"{root(auth_server)}/auth/revoke"
    assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 200
    # another client cannot revoke it (200, nothing happens)
    other = public_client(auth_server, scope)
    assert httpx.post(url, data={"token": t["access_token"], "client_id": other}, timeout=30).status_code == 200
    assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 200
    r = httpx.post(url, data={"token": t["access_token"], "client_id": client_id}, timeout=30)
    assert r.status_code == 200
    assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 401
    # unknown tokens: 200 too
    assert httpx.post(url, data={"token": "unknown", "client_id": client_id}, timeout=30).status_code == 200
    # revoking the refresh token ends it (and the grant)
    assert httpx.post(url, data={"token": t["refresh_token"], "client_id": client_id}, timeout=30).status_code == 200
    r = httpx.post(f"{root(auth_server)}/auth/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": client_id})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
