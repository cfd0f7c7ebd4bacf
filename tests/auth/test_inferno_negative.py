"""Negative and conditional checks around the Inferno SMART App Launch STU2 / STU2.2 flows that the existing
tests (test_oauth_negative.py) do not cover yet: EHR launch values, response types, codes and refresh tokens bound
to their client, client authentication on refresh for confidential clients, inactive tokens at introspection, and
the introspection response's conditional fields (token-introspection.html)."""

from __future__ import annotations

import time

import httpx
import pytest

from fhir_server.auth import launches
from tests.auth.oauth_support import (
    REDIRECT,
    add_user,
    auth_params,
    backend_client,
    backend_token,
    browser,
    get_code,
    pkce,
    query,
    root,
    run_db,
    start,
)
from tests.auth.test_inferno_support import (
    STANDALONE_SCOPES,
    check_no_store,
    ehr,
    patient,
    register,
    standalone,
    token_post,
)


def _authorize_error(server, params) -> dict[str, str]:
    with browser(server) as b:
        r = start(b, params)
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith(REDIRECT + "?")
    q = query(r.headers["location"])
    assert "code" not in q and q["state"] == params["state"]
    return q


def _token_error(r: httpx.Response, error: str, statuses: tuple[int, ...] = (400,)) -> None:
    assert r.status_code in statuses, r.text
    assert r.json()["error"] == error, r.json()
    check_no_store(r)


def test_ehr_launch_value_checked(auth_server, admin):
    """EHR launch: an unknown launch value, an expired one, or the launch scope with no launch parameter → an
    error redirect (invalid_request) with the state, before any login."""
    app = register(auth_server, "public", "launch openid fhirUser patient/*.rs")
    _, challenge = pkce()
    scope = "launch openid fhirUser patient/*.rs"
    q = _authorize_error(auth_server, auth_params(auth_server, app.client_id, scope, challenge, launch="no-such"))
    assert q["error"] == "invalid_request"
    pid = patient(admin)
    stale = run_db(auth_server, lambda db: launches.create(db, launches.validate({"patient": pid}), ttl_seconds=-1))
    q = _authorize_error(auth_server, auth_params(auth_server, app.client_id, scope, challenge, launch=stale))
    assert q["error"] == "invalid_request"
    q = _authorize_error(auth_server, auth_params(auth_server, app.client_id, scope, challenge))
    assert q["error"] == "invalid_request"


def test_unsupported_response_type(auth_server):
    """Only response_type=code (response_types_supported): response_type=token → unsupported_response_type."""
    app = register(auth_server, "public", STANDALONE_SCOPES)
    _, challenge = pkce()
    q = _authorize_error(auth_server, auth_params(auth_server, app.client_id, STANDALONE_SCOPES, challenge,
                                                  response_type="token"))
    assert q["error"] == "unsupported_response_type"


def test_code_bound_to_its_client(auth_server, admin):
    """A code issued to one client cannot be redeemed by another (RFC 6749 §4.1.3) → invalid_grant; the failed
    attempt leaves the code unused, so its own client can still redeem it."""
    pid = patient(admin)
    app = register(auth_server, "public", STANDALONE_SCOPES)
    thief = register(auth_server, "public", STANDALONE_SCOPES)
    user = add_user(auth_server, f"Patient/{pid}")
    verifier, challenge = pkce()
    code = get_code(auth_server, auth_params(auth_server, app.client_id, STANDALONE_SCOPES, challenge), user)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    _token_error(token_post(auth_server, thief, data), "invalid_grant")
    assert token_post(auth_server, app, data).status_code == 200


@pytest.mark.parametrize("auth_type", ["symmetric", "asymmetric"])
def test_confidential_client_must_authenticate(auth_server, admin, auth_type):
    """A confidential client's code exchange and refresh without its credentials (client_id only, as a public
    client would send) → invalid_client; the refresh token stays usable with the credentials."""
    launch = standalone(auth_server, admin, auth_type)
    assert launch.response.status_code == 200, launch.response.text
    url = f"{root(auth_server)}/auth/token"
    r = httpx.post(url, timeout=30, data={"grant_type": "refresh_token", "client_id": launch.app.client_id,
                                          "refresh_token": launch.body["refresh_token"]})
    _token_error(r, "invalid_client", (400, 401))
    r = token_post(auth_server, launch.app, {"grant_type": "refresh_token",
                                             "refresh_token": launch.body["refresh_token"]})
    assert r.status_code == 200, r.text


def test_refresh_token_bound_to_its_client(auth_server, admin):
    """A refresh token presented by another client → invalid_grant."""
    launch = standalone(auth_server, admin, "public")
    other = register(auth_server, "public", STANDALONE_SCOPES)
    r = token_post(auth_server, other, {"grant_type": "refresh_token", "refresh_token": launch.body["refresh_token"]})
    _token_error(r, "invalid_grant")


def test_refresh_with_wider_scope_refused(auth_server, admin):
    """smart_token_refresh_body checks the refreshed scopes are a subset of the original: asking more → refused
    (invalid_scope), never granted."""
    launch = standalone(auth_server, admin, "public")
    r = token_post(auth_server, launch.app, {"grant_type": "refresh_token", "scope": launch.body["scope"] +
                                             " patient/*.cruds", "refresh_token": launch.body["refresh_token"]})
    _token_error(r, "invalid_scope")


def _introspect(server, launch, token: str) -> httpx.Response:
    return httpx.post(f"{root(server)}/auth/introspect", data={"token": token},
                      auth=(launch.app.client_id, launch.app.secret or ""), timeout=30)


def test_introspection_inactive_tokens(auth_server, admin):
    """Expired and revoked access tokens introspect as exactly {"active": false} (Inferno warns on extra members)."""
    launch = standalone(auth_server, admin, "symmetric")
    token = launch.body["access_token"]
    r = httpx.post(f"{root(auth_server)}/auth/revoke", data={"token": token},
                   auth=(launch.app.client_id, launch.app.secret or ""), timeout=30)
    assert r.status_code == 200
    assert _introspect(auth_server, launch, token).json() == {"active": False}
    fresh = token_post(auth_server, launch.app, {"grant_type": "refresh_token",
                                                 "refresh_token": launch.body["refresh_token"]}).json()

    async def expire(db):
        async with db.write() as c:
            await c.run("UPDATE oauth_token SET expires_at = %s WHERE client_id = %s AND kind = %s",
                        (1, launch.app.client_id, "access"))

    run_db(auth_server, expire)
    assert _introspect(auth_server, launch, fresh["access_token"]).json() == {"active": False}


def test_introspection_exp_matches_expires_in(auth_server, admin):
    """token-introspection.html: exp is consistent with the token response's expires_in."""
    before = time.time()
    launch = standalone(auth_server, admin, "symmetric")
    got = _introspect(auth_server, launch, launch.body["access_token"]).json()
    assert before + launch.body["expires_in"] - 5 <= got["exp"] <= time.time() + launch.body["expires_in"] + 5


def test_introspection_carries_launch_context(auth_server, admin):
    """token-introspection.html 'Conditional fields': every launch context parameter of the token response is in
    the introspection response."""
    launch = ehr(auth_server, admin, "symmetric", intent="reconcile-medications",
                 fhirContext=[{"reference": "CarePlan/cp-ctx"}], need_patient_banner=False)
    assert launch.response.status_code == 200, launch.response.text
    got = _introspect(auth_server, launch, launch.body["access_token"]).json()
    for k in ("patient", "encounter", "intent", "fhirContext", "need_patient_banner", "smart_style_url", "tenant"):
        if k in launch.body:
            assert got.get(k) == launch.body[k], k


def test_launch_rejects_malformed_fhir_context(auth_server):
    """scopes-and-launch-context.html 'fhirContext': each item SHALL be an object with at least one of reference
    (relative), canonical, identifier. A launch context breaking that is refused with 400 at /auth/launch."""
    ehr_id, key = backend_client(auth_server, "system/launch")
    token = backend_token(auth_server, ehr_id, key, "system/launch").json()["access_token"]
    for bad in (["CarePlan/1"], [{"reference": "https://other.example.org/fhir/CarePlan/1"}], [{"type": "CarePlan"}],
                [{"reference": "Patient/p2"}], [{"identifier": {}}]):
        r = httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": "p1", "fhirContext": bad},
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (bad, r.text)
    good = [{"reference": "CarePlan/1", "role": "https://example.org/role"}, {"canonical": "http://x.org/Q|1"},
            {"reference": "Patient/sibling", "role": "https://example.org/sibling"},
            {"identifier": {"system": "urn:x", "value": "1"}, "type": "DocumentReference"}]
    r = httpx.post(f"{root(auth_server)}/auth/launch", json={"patient": "p1", "fhirContext": good},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 201, r.text
