"""The Inferno SMART App Launch STU2 / STU2.2 test kit's standalone launch, EHR launch, OpenID Connect, token
refresh and token introspection checks, made the way Inferno makes them, for each client type Inferno offers
(public, confidential symmetric, confidential asymmetric). The Inferno test id is in each test's docstring; the
review is in /tmp/inferno-review.md."""

from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.auth.oauth_support import fhir_get, root
from tests.auth.test_inferno_support import (
    FHIR_USER_TYPES,
    INFERNO_ORIGIN,
    check_no_store,
    check_token_body,
    ehr,
    standalone,
    token_post,
)

AUTH_TYPES = ["public", "symmetric", "asymmetric"]


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_standalone_token_exchange(auth_server, admin, auth_type):
    """smart_token_exchange_stu2_2, smart_token_response_body_stu2_2, smart_token_response_headers,
    smart_cors_token_exchange (public clients)."""
    launch = standalone(auth_server, admin, auth_type)
    r = launch.response
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = launch.body
    check_token_body(body)
    check_no_store(r)
    assert body["patient"] == launch.patient
    assert set(body["scope"].split()) == set(launch.scope.split())  # check_for_missing_scopes (a warning)
    assert body["id_token"] and body["refresh_token"]
    if auth_type == "public":
        assert r.headers.get("access-control-allow-origin") in (INFERNO_ORIGIN, "*")
    assert fhir_get(auth_server, f"Patient/{launch.patient}", body["access_token"]).status_code == 200


@pytest.mark.parametrize("auth_type", ["public", "asymmetric"])
def test_ehr_launch_token_exchange(auth_server, admin, auth_type):
    """smart_ehr_launch_stu2_2: the launch value is accepted; the token response carries the launch context;
    fhirContext in the STU2.2 form (objects with a relative reference)."""
    launch = ehr(auth_server, admin, auth_type, encounter="enc-inf", fhirContext=[{"reference": "CarePlan/cp-inf"}])
    assert launch.response.status_code == 200, launch.response.text
    body = launch.body
    check_token_body(body)
    check_no_store(launch.response)
    assert body["patient"] == launch.patient and body["encounter"] == "enc-inf"
    assert body["fhirContext"] == [{"reference": "CarePlan/cp-inf"}]


def _openid(server, launch):
    """smart_openid_decode_id_token → retrieve_configuration → required_configuration_fields → retrieve_jwks →
    token_header → token_payload; returns the payload."""
    id_token = launch.body["id_token"]
    header, payload = (orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                       for part in id_token.split(".")[:2])  # smart_openid_decode_id_token: no verification yet
    unverified_iss = payload["iss"]
    r = httpx.get(f"{unverified_iss.rstrip('/')}/.well-known/openid-configuration", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    config = r.json()
    for f in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
              "subject_types_supported", "id_token_signing_alg_values_supported"):
        assert f in config, f
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    jwks = httpx.get(config["jwks_uri"], timeout=30)
    assert jwks.status_code == 200
    rsa = [k for k in jwks.json()["keys"] if k["kty"] == "RSA"]
    assert rsa
    assert header["alg"] == "RS256"
    if len(rsa) > 1:
        assert header.get("kid")
    jwk = next((k for k in rsa if k.get("kid") == header.get("kid")), None) if header.get("kid") else rsa[0]
    assert jwk is not None, "no JWKS key with the id_token's kid"
    tok = jwt.decode(id_token, KeySet.import_key_set({"keys": [jwk]}), algorithms=["RS256"])
    claims = tok.claims
    jwt.JWTClaimsRegistry(leeway=60, iss={"essential": True, "value": config["issuer"]},
                          aud={"essential": True, "value": launch.app.client_id}).validate(claims)
    for c in ("iss", "sub", "aud", "exp", "iat"):
        assert c in claims, c
    assert claims["sub"] and len(claims["sub"]) < 256
    assert claims["exp"] > time.time()
    return claims


@pytest.mark.parametrize("auth_type", ["public", "symmetric"])
def test_openid_connect_standalone(auth_server, admin, auth_type):
    """smart_openid_connect_stu2_2 on a standalone launch: id_token, OpenID configuration at the issuer, JWKS, RS256
    header, payload; smart_openid_fhir_user_claim and smart_cors_openid_fhir_user_claim (the fhirUser resource is
    read with the access token, answered with CORS)."""
    launch = standalone(auth_server, admin, auth_type)
    claims = _openid(auth_server, launch)
    fhir_user = claims["fhirUser"]
    rtype, rid = fhir_user.split("/")[-2:]
    assert rtype in FHIR_USER_TYPES
    r = httpx.get(f"{auth_server.base}/{rtype}/{rid}", timeout=30, headers={
        "Authorization": f"Bearer {launch.body['access_token']}", "Accept": "application/fhir+json",
        "Origin": INFERNO_ORIGIN})
    assert r.status_code == 200 and r.json()["resourceType"] == rtype
    assert r.headers.get("access-control-allow-origin") in (INFERNO_ORIGIN, "*")


def test_openid_connect_ehr(auth_server, admin):
    """smart_openid_connect_stu2_2 on an EHR launch: the id_token checks (payload, header, signature)."""
    launch = ehr(auth_server, admin)
    claims = _openid(auth_server, launch)
    rtype = claims["fhirUser"].split("/")[-2]
    assert rtype in FHIR_USER_TYPES and claims["fhirUser"].endswith(launch.fhir_user)


def test_ehr_fhir_user_resolvable_with_the_access_token(auth_server, admin):
    """smart_openid_fhir_user_claim on Inferno's default EHR launch (``launch openid fhirUser offline_access
    patient/*.rs``): the Practitioner in fhirUser is read with the access token."""
    launch = ehr(auth_server, admin)
    r = fhir_get(auth_server, launch.fhir_user, launch.body["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "Practitioner"


@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_token_refresh(auth_server, admin, auth_type):
    """smart_token_refresh_stu2 without and with the scope parameter (the received scopes, as Inferno sends them),
    smart_token_refresh_body, smart_token_response_headers on the refresh; client authentication as at the code
    exchange."""
    launch = standalone(auth_server, admin, auth_type)
    received = launch.body["scope"]
    r = token_post(auth_server, launch.app, {"grant_type": "refresh_token",
                                             "refresh_token": launch.body["refresh_token"]})
    assert r.status_code == 200, r.text
    check_token_body(r.json(), refresh=True)
    check_no_store(r)
    assert set(r.json()["scope"].split()) <= set(received.split())  # validate_scope_subset
    refresh = r.json().get("refresh_token") or launch.body["refresh_token"]
    r = token_post(auth_server, launch.app, {"grant_type": "refresh_token", "refresh_token": refresh,
                                             "scope": r.json()["scope"]})
    assert r.status_code == 200, r.text
    check_token_body(r.json(), refresh=True)
    check_no_store(r)
    assert set(r.json()["scope"].split()) <= set(received.split())
    assert fhir_get(auth_server, f"Patient/{launch.patient}", r.json()["access_token"]).status_code == 200


def test_token_introspection(auth_server, admin):
    """smart_token_introspection_stu2_2: a new standalone token (confidential symmetric, as Inferno's introspection
    group asks), introspected with the client's credentials as the custom Authorization header; the active response
    matches the token response (client_id, the same scopes, exp, patient, iss and sub of the id_token, fhirUser);
    an invalid token gives exactly {"active": false}."""
    launch = standalone(auth_server, admin, "symmetric")
    body = launch.body
    url = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", timeout=30).json()["introspection_endpoint"]
    auth = (launch.app.client_id, launch.app.secret)
    r = httpx.post(url, data={"token": body["access_token"]}, auth=auth, timeout=30,
                   headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["active"] is True
    assert got["client_id"] == launch.app.client_id
    assert sorted(got["scope"].split()) == sorted(body["scope"].split())
    assert got["exp"] >= time.time() - 600
    assert got["patient"] == body["patient"]
    id_claims = jwt.decode(body["id_token"], KeySet.import_key_set(
        httpx.get(f"{root(auth_server)}/auth/jwks", timeout=30).json()), algorithms=["RS256"]).claims
    assert got["iss"] == id_claims["iss"] and got["sub"] == id_claims["sub"]
    assert got["fhirUser"] == id_claims["fhirUser"]  # an info-level check in Inferno
    r = httpx.post(url, data={"token": "invalid_token_value"}, auth=auth, timeout=30)
    assert r.status_code == 200 and r.json() == {"active": False}
