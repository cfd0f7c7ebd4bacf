"""SMART discovery, OpenID configuration, JWKS and the CapabilityStatement's security (issue 7 point 1):
public endpoints, no token."""

from __future__ import annotations

import httpx

from tests.auth.oauth_support import root

CAPABILITIES = {"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
                "client-confidential-asymmetric", "context-ehr-patient", "context-ehr-encounter",
                "context-standalone-patient", "permission-offline", "permission-online", "permission-patient",
                "permission-user", "permission-v1", "permission-v2", "sso-openid-connect", "authorize-post"}


def test_smart_configuration(auth_server):
    r = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    c = r.json()
    base = root(auth_server)
    assert c["issuer"] == auth_server.base
    assert c["authorization_endpoint"] == f"{base}/auth/authorize"
    assert c["token_endpoint"] == f"{base}/auth/token"
    assert c["introspection_endpoint"] == f"{base}/auth/introspect"
    assert c["revocation_endpoint"] == f"{base}/auth/revoke"
    assert c["jwks_uri"] == f"{base}/auth/jwks"
    assert c["code_challenge_methods_supported"] == ["S256"]
    assert c["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "private_key_jwt"]
    assert c["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert set(c["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert c["response_types_supported"] == ["code"]
    assert CAPABILITIES <= set(c["capabilities"])
    assert {"openid", "fhirUser", "launch", "launch/patient", "offline_access"} <= set(c["scopes_supported"])


def test_openid_configuration_and_jwks(auth_server):
    c = httpx.get(f"{auth_server.base}/.well-known/openid-configuration", timeout=30).json()
    assert c["issuer"] == auth_server.base
    assert c["jwks_uri"] == f"{root(auth_server)}/auth/jwks"
    assert "RS256" in c["id_token_signing_alg_values_supported"]
    jwks = httpx.get(c["jwks_uri"], timeout=30).json()
    assert jwks["keys"]
    for k in jwks["keys"]:
        assert k["kty"] == "RSA" and k["kid"] and k["alg"] == "RS256"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k)  # public part only


def test_capability_statement_security(auth_server):
    r = httpx.get(f"{auth_server.base}/metadata", headers={"Accept": "application/fhir+json"}, timeout=30)
    assert r.status_code == 200
    sec = r.json()["rest"][0]["security"]
    coding = sec["service"][0]["coding"][0]
    assert (coding["system"], coding["code"]) == (
        "http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR")
    ext = next(e for e in sec["extension"]
               if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    base = root(auth_server)
    assert uris == {"authorize": f"{base}/auth/authorize", "token": f"{base}/auth/token",
                    "introspect": f"{base}/auth/introspect", "revoke": f"{base}/auth/revoke"}
