"""The Inferno SMART App Launch STU2 / STU2.2 test kit's discovery checks (smart_discovery_stu2_2 group): the
well-known SMART configuration and its field types, and the CORS checks on the public discovery endpoints."""

from __future__ import annotations

import httpx

from tests.auth.test_inferno_support import INFERNO_ORIGIN


def test_well_known_endpoint(auth_server):
    """well_known_endpoint: 200, JSON, Content-Type application/json; the endpoint URLs are absolute."""
    r = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", headers={"Accept": "application/json"},
                  timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    c = r.json()
    for f in ("authorization_endpoint", "token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert c[f].startswith(("http://", "https://")), f


def test_well_known_capabilities_stu2(auth_server):
    """well_known_capabilities_stu2: required fields present, non-blank and of the right JSON type;
    authorization_code granted; S256 and not plain; issuer and jwks_uri strings with sso-openid-connect;
    capabilities all strings."""
    c = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", timeout=30).json()
    for key, kind in {"authorization_endpoint": str, "token_endpoint": str, "capabilities": list,
                      "grant_types_supported": list, "code_challenge_methods_supported": list}.items():
        assert isinstance(c.get(key), kind) and c[key], key
    assert "authorization_code" in c["grant_types_supported"]
    assert "S256" in c["code_challenge_methods_supported"]
    assert "plain" not in c["code_challenge_methods_supported"]
    assert "sso-openid-connect" in c["capabilities"]
    assert isinstance(c["issuer"], str) and isinstance(c["jwks_uri"], str)
    assert all(isinstance(x, str) for x in c["capabilities"])


def test_cors_well_known_endpoint(auth_server):
    """smart_cors_well_known_endpoint: a request with an Origin gets Access-Control-Allow-Origin (that origin or
    *)."""
    r = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", timeout=30,
                  headers={"Accept": "application/json", "Origin": INFERNO_ORIGIN})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") in (INFERNO_ORIGIN, "*")


def test_cors_metadata_request(auth_server):
    """smart_cors_metadata_request: the CapabilityStatement, read without a token, with CORS."""
    r = httpx.get(f"{auth_server.base}/metadata", timeout=30,
                  headers={"Accept": "application/fhir+json", "Origin": INFERNO_ORIGIN})
    assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"
    assert r.headers.get("access-control-allow-origin") in (INFERNO_ORIGIN, "*")


def test_cors_preflight_token_endpoint(auth_server):
    """A browser app's preflight before the token POST (what smart_cors_token_exchange needs in a real browser)."""
    r = httpx.options(f"{auth_server.base.rsplit('/fhir', 1)[0]}/auth/token", timeout=30, headers={
        "Origin": INFERNO_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status_code in (200, 204)
    assert r.headers.get("access-control-allow-origin") in (INFERNO_ORIGIN, "*")
    assert "POST" in r.headers.get("access-control-allow-methods", "")
