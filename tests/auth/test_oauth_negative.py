"""The negative checks of the Inferno SMART App Launch test kit, one test each (issue 7 "Tests and proof"): every
refusal is the OAuth error JSON (RFC 6749 §5.2) or an error redirect to the app, never a 500."""

from __future__ import annotations

import httpx
from joserfc.jwk import RSAKey

from fhir_server.auth import clients
from tests.auth.oauth_support import (
    REDIRECT,
    add_user,
    assertion,
    auth_params,
    backend_client,
    backend_token,
    browser,
    decide,
    exchange,
    fhir_get,
    get_code,
    login,
    pkce,
    public_client,
    query,
    root,
    run_db,
    secret_client,
    start,
)

SCOPE = "launch/patient offline_access patient/*.rs"


def _setup(server, admin):
    pid = f"neg-{id(server) % 1000}-{httpx.__version__.replace('.', '')}"
    admin.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid})
    client_id = public_client(server, SCOPE)
    return pid, client_id, add_user(server, f"Patient/{pid}")


def _token_error(r: httpx.Response, error: str, status: int = 400) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["error_description"]


def test_bad_pkce_verifier(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    _, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge), user)
    other_verifier, _ = pkce()
    _token_error(exchange(auth_server, client_id, code, other_verifier), "invalid_grant")


def test_missing_pkce(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    # no code_challenge at the authorization endpoint: error redirect, no login
    params = auth_params(auth_server, client_id, SCOPE, None)
    with browser(auth_server) as b:
        r = start(b, params)
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert r.headers["location"].startswith(REDIRECT)
    assert q["error"] == "invalid_request" and q["state"] == params["state"]
    # a code issued with a challenge but redeemed without the verifier
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge), user)
    _token_error(exchange(auth_server, client_id, code, None), "invalid_request")


def test_plain_pkce_refused(auth_server, admin):
    _, client_id, _ = _setup(auth_server, admin)
    verifier, _ = pkce()
    params = auth_params(auth_server, client_id, SCOPE, None, code_challenge=verifier, code_challenge_method="plain")
    with browser(auth_server) as b:
        r = start(b, params)
    assert r.status_code == 302 and query(r.headers["location"])["error"] == "invalid_request"


def test_reused_code_refused_and_its_tokens_revoked(auth_server, admin):
    pid, client_id, user = _setup(auth_server, admin)
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge), user)
    first = exchange(auth_server, client_id, code, verifier)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    assert fhir_get(auth_server, f"Patient/{pid}", token).status_code == 200
    _token_error(exchange(auth_server, client_id, code, verifier), "invalid_grant")
    assert fhir_get(auth_server, f"Patient/{pid}", token).status_code == 401
    r = httpx.post(f"{root(auth_server)}/auth/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"], "client_id": client_id})
    _token_error(r, "invalid_grant")


def test_wrong_redirect_uri(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    verifier, challenge = pkce()
    # at the authorization endpoint: an error page, never a redirect to the unregistered address
    params = auth_params(auth_server, client_id, SCOPE, challenge, redirect_uri="https://evil.example.org/cb")
    with browser(auth_server) as b:
        r = start(b, params)
    assert r.status_code == 400 and "location" not in r.headers and "text/html" in r.headers["content-type"]
    # an unknown client: an error page too
    with browser(auth_server) as b:
        r = start(b, auth_params(auth_server, "no-such-client", SCOPE, challenge))
    assert r.status_code == 400 and "location" not in r.headers
    # at the token endpoint: a redirect_uri other than the authorization request's
    code = get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge), user)
    _token_error(exchange(auth_server, client_id, code, verifier, redirect_uri=REDIRECT + "/other"), "invalid_grant")


def test_wrong_aud(auth_server, admin):
    _, client_id, _ = _setup(auth_server, admin)
    _, challenge = pkce()
    params = auth_params(auth_server, client_id, SCOPE, challenge, aud="https://other.example.org/fhir")
    with browser(auth_server) as b:
        r = start(b, params)
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert q["error"] == "invalid_request" and q["state"] == params["state"]


def test_expired_code(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge), user)

    async def expire(db):
        async with db.write() as c:
            await c.run("UPDATE oauth_code SET expires_at = %s WHERE client_id = %s", (1, client_id))

    run_db(auth_server, expire)
    _token_error(exchange(auth_server, client_id, code, verifier), "invalid_grant")


def test_revoked_token(auth_server, admin):
    pid, client_id, user = _setup(auth_server, admin)
    verifier, challenge = pkce()
    t = exchange(auth_server, client_id, get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge),
                                                  user), verifier).json()
    assert httpx.post(f"{root(auth_server)}/auth/revoke", data={"token": t["access_token"], "client_id": client_id},
                      timeout=30).status_code == 200
    r = fhir_get(auth_server, f"Patient/{pid}", t["access_token"])
    assert r.status_code == 401 and r.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_tampered_token(auth_server, admin):
    pid, client_id, user = _setup(auth_server, admin)
    verifier, challenge = pkce()
    t = exchange(auth_server, client_id, get_code(auth_server, auth_params(auth_server, client_id, SCOPE, challenge),
                                                  user), verifier).json()
    token = t["access_token"]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert fhir_get(auth_server, f"Patient/{pid}", tampered).status_code == 401
    assert fhir_get(auth_server, f"Patient/{pid}", token).status_code == 200


def test_invalid_client_assertion(auth_server):
    client_id, key = backend_client(auth_server, "system/Patient.rs")
    # signed by another key (same kid)
    forged = RSAKey.generate_key(2048, parameters={"kid": key.kid, "alg": "RS384"}, private=True)
    _token_error(backend_token(auth_server, client_id, forged, "system/Patient.rs"), "invalid_client")
    # wrong audience
    _token_error(backend_token(auth_server, client_id, key, "system/Patient.rs", aud=auth_server.base),
                 "invalid_client")
    # expires more than 5 minutes ahead
    _token_error(backend_token(auth_server, client_id, key, "system/Patient.rs", exp_in=600), "invalid_client")
    # expired
    _token_error(backend_token(auth_server, client_id, key, "system/Patient.rs", exp_in=-300), "invalid_client")
    # an algorithm other than RS384/ES384
    rs256 = RSAKey.import_key({**key.as_dict(private=True), "alg": "RS256"})
    _token_error(backend_token(auth_server, client_id, rs256, "system/Patient.rs"), "invalid_client")
    # still fine when valid
    assert backend_token(auth_server, client_id, key, "system/Patient.rs").status_code == 200


def test_replayed_jti(auth_server):
    client_id, key = backend_client(auth_server, "system/Patient.rs")
    a = assertion(auth_server, client_id, key, jti="same-jti-1")
    data = {"grant_type": "client_credentials", "scope": "system/Patient.rs", "client_assertion": a,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    url = f"{root(auth_server)}/auth/token"
    assert httpx.post(url, data=data, timeout=30).status_code == 200
    _token_error(httpx.post(url, data=data, timeout=30), "invalid_client")


def test_bad_client_secret(auth_server, admin):
    _, _, _ = _setup(auth_server, admin)
    client_id, secret = secret_client(auth_server, SCOPE)
    r = httpx.post(f"{root(auth_server)}/auth/token", data={"grant_type": "authorization_code", "code": "x",
                                                            "redirect_uri": REDIRECT},
                   auth=(client_id, secret + "x"), timeout=30)
    _token_error(r, "invalid_client", 401)
    # a confidential client cannot pretend to be public
    r = httpx.post(f"{root(auth_server)}/auth/token", data={"grant_type": "authorization_code", "code": "x",
                                                            "redirect_uri": REDIRECT, "client_id": client_id},
                   timeout=30)
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    # a public client cannot use client_credentials
    pub = public_client(auth_server, "system/*.rs")
    r = httpx.post(f"{root(auth_server)}/auth/token", data={"grant_type": "client_credentials", "client_id": pub},
                   timeout=30)
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "unauthorized_client")


def test_deny_at_authorization_page(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    _, challenge = pkce()
    params = auth_params(auth_server, client_id, SCOPE, challenge)
    with browser(auth_server) as b:
        start(b, params)
        login(b, user)
        r = decide(b, "deny")
    assert r.status_code == 302
    q = query(r.headers["location"])
    assert r.headers["location"].startswith(REDIRECT) and q["error"] == "access_denied"
    assert q["state"] == params["state"] and "code" not in q


def test_wrong_password_and_csrf(auth_server, admin):
    _, client_id, user = _setup(auth_server, admin)
    _, challenge = pkce()
    with browser(auth_server) as b:
        start(b, auth_params(auth_server, client_id, SCOPE, challenge))
        r = login(b, user, "wrong password")
        assert r.status_code == 401 and "Wrong username or password" in r.text
        r = login(b, "nobody-at-all", "whatever")
        assert r.status_code == 401
        # a form without the CSRF token is refused
        r = b.post("/auth/login", data={"username": user, "password": "x"})
        assert r.status_code == 400
        cookie = next(c for c in b.cookies.jar if c.name == "cares_auth")
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/auth"


def test_malformed_token_requests(auth_server):
    url = f"{root(auth_server)}/auth/token"
    _token_error(httpx.post(url, data={"grant_type": "password", "username": "a", "password": "b"}, timeout=30),
                 "unsupported_grant_type")
    _token_error(httpx.post(url, data={}, timeout=30), "unsupported_grant_type")
    r = httpx.post(url, json={"grant_type": "client_credentials"}, timeout=30)
    assert 400 <= r.status_code < 500 and "error" in r.json()
    r = httpx.post(url, data={"grant_type": "authorization_code", "code": "x" * 5000, "client_id": "y" * 5000,
                              "redirect_uri": REDIRECT}, timeout=30)
    assert 400 <= r.status_code < 500 and "error" in r.json()
    assert run_db(auth_server, lambda db: clients.get(db, "y" * 5000)) is None
