"""CORS for browser SMART apps on another origin (``fhir_server/app.py``): preflights of the FHIR API and the token
endpoint are answered before authorization, responses carry ``Access-Control-Allow-Origin``, and the login and
consent pages (cookies) get no CORS headers."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer

ORIGIN = "http://127.0.0.1:1"


def _root(server: LiveServer) -> str:
    return server.base.rsplit("/fhir", 1)[0]


def test_preflight_of_a_bearer_read_is_answered_without_a_token(auth_server: LiveServer) -> None:
    r = httpx.options(f"{auth_server.base}/CarePlan/x", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, accept"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "GET" in r.headers["access-control-allow-methods"]


def test_fhir_answers_carry_cors_headers_even_when_refused(auth_server: LiveServer) -> None:
    ok = httpx.get(f"{auth_server.base}/metadata", headers={"Origin": ORIGIN})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    refused = httpx.get(f"{auth_server.base}/CarePlan/x", headers={"Origin": ORIGIN})
    assert refused.status_code == 401  # still enforced; the app can read why
    assert refused.headers["access-control-allow-origin"] == "*"
    assert "www-authenticate" in refused.headers["access-control-expose-headers"].lower()


def test_token_endpoint_allows_cross_origin_posts(auth_server: LiveServer) -> None:
    r = httpx.options(f"{_root(auth_server)}/auth/token", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


def test_login_pages_get_no_cors(auth_server: LiveServer) -> None:
    r = httpx.get(f"{_root(auth_server)}/auth/authorize", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in r.headers
