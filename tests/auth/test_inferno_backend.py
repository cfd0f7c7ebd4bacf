"""The Inferno SMART App Launch STU2 / STU2.2 test kit's Backend Services checks (backend_services_authorization
group) and the SMART Backend Services client-assertion rules behind them, with Inferno's request shape: a form
``scope``, ``grant_type``, ``client_assertion_type``, ``client_assertion`` whose JWT has ``iss``, ``sub``, ``aud``,
``exp`` = now + 5 minutes and ``jti`` but no ``iat``, signed RS384 or ES384 with a key from a JWKS carrying
``key_ops``/``ext`` members. The Inferno test id is in each test's docstring."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.auth import clients
from tests.auth.oauth_support import fhir_get, root, run_db, uid
from tests.auth.test_inferno_support import (
    ASSERTION_TYPE,
    check_no_store,
    inferno_assertion,
    inferno_key,
    patient,
    public_jwks,
    register,
)

SCOPE = "system/Patient.rs system/Observation.rs"


def _post(server, form: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{root(server)}/auth/token", data=form, timeout=30, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})


def _request(server, app, **kw: Any) -> dict[str, str]:
    grant_type = kw.pop("grant_type", "client_credentials")
    assertion_type = kw.pop("client_assertion_type", ASSERTION_TYPE)
    scope = kw.pop("scope", SCOPE)
    return {"scope": scope, "grant_type": grant_type, "client_assertion_type": assertion_type,
            "client_assertion": inferno_assertion(server, app.client_id, app.key, **kw)}


def _refused(r: httpx.Response, statuses: tuple[int, ...] = (400, 401), error: str | None = None) -> None:
    assert r.status_code in statuses, r.text
    body = r.json()
    assert body["error"] and (error is None or body["error"] == error), body


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_backend_services_success(auth_server, admin, alg):
    """smart_backend_services_auth_request_success and smart_backend_services_auth_response_body: Inferno's
    assertion (no iat, exp exactly 5 minutes ahead) is accepted; access_token, token_type bearer, numeric
    expires_in, scope; no-store; the token reads data."""
    pid = patient(admin)
    app = register(auth_server, "asymmetric", SCOPE, alg)
    r = _post(auth_server, _request(auth_server, app))
    assert r.status_code in (200, 201), r.text
    body = r.json()
    assert body["access_token"] and body["token_type"].lower() == "bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert set(body["scope"].split()) == set(SCOPE.split())
    assert "refresh_token" not in body
    check_no_store(r)
    assert fhir_get(auth_server, f"Patient/{pid}", body["access_token"]).status_code == 200


def test_backend_token_short_lived(auth_server):
    """backend-services.html 'Response': access tokens SHALL be short-lived; expires_in SHOULD NOT exceed 300."""
    app = register(auth_server, "asymmetric", SCOPE)
    r = _post(auth_server, _request(auth_server, app))
    assert r.status_code == 200, r.text
    token = r.json()
    assert 0 < token["expires_in"] <= 300
    # the token itself expires then (introspected with its own system/ bearer), not only the response says so
    url = httpx.get(f"{auth_server.base}/.well-known/smart-configuration", timeout=30).json()["introspection_endpoint"]
    got = httpx.post(url, data={"token": token["access_token"]}, timeout=30,
                     headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert got["active"] is True and 0 < got["exp"] - got["iat"] <= 300, got


def test_invalid_grant_type(auth_server):
    """smart_backend_services_invalid_grant_type: a valid assertion with grant_type=not_a_grant_type → 400."""
    app = register(auth_server, "asymmetric", SCOPE)
    _refused(_post(auth_server, _request(auth_server, app, grant_type="not_a_grant_type")), (400,),
             "unsupported_grant_type")


def test_invalid_client_assertion_type(auth_server):
    """smart_backend_services_invalid_client_assertion and smart_backend_services_invalid_jwt (both send
    client_assertion_type=not_an_assertion_type) → 400 or 401."""
    app = register(auth_server, "asymmetric", SCOPE)
    _refused(_post(auth_server, _request(auth_server, app, client_assertion_type="not_an_assertion_type")))


def test_malformed_client_assertion(auth_server):
    """The invalid-JWT case as its title says: a client_assertion that is not a JWT, or one whose signature was
    altered → invalid_client."""
    app = register(auth_server, "asymmetric", SCOPE)
    form = _request(auth_server, app)
    _refused(_post(auth_server, form | {"client_assertion": "not.a.jwt"}), error="invalid_client")
    head, payload, sig = form["client_assertion"].split(".")
    bad = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    _refused(_post(auth_server, form | {"client_assertion": f"{head}.{payload}.{bad}"}), error="invalid_client")


def test_assertion_claims_checked(auth_server):
    """SMART Backend Services authentication: iss and sub are the client id, aud the token URL, exp present and at
    most 5 minutes ahead, jti present → otherwise invalid_client."""
    app = register(auth_server, "asymmetric", SCOPE)
    other = register(auth_server, "asymmetric", SCOPE)
    cases = [
        {"iss": other.client_id},  # iss ≠ sub
        {"iss": other.client_id, "sub": other.client_id},  # another client's id, signed with this client's key
        {"aud": f"{root(auth_server)}/auth/authorize"},
        {"omit": ("exp",)},
        {"omit": ("jti",)},
        {"omit": ("aud",)},
        {"exp_in": -120},  # expired beyond the clock-skew tolerance
        {"exp_in": 900},
    ]
    for kw in cases:
        _refused(_post(auth_server, _request(auth_server, app, **kw)), error="invalid_client")
    assert _post(auth_server, _request(auth_server, app)).status_code == 200


def test_unknown_client(auth_server):
    """A well-formed assertion from a client id the server does not know → 401/400 invalid_client, never 500."""
    key = inferno_key()
    form = {"scope": SCOPE, "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": inferno_assertion(auth_server, uid("nobody"), key)}
    _refused(_post(auth_server, form), error="invalid_client")


def test_non_system_scopes_refused(auth_server):
    """Backend services tokens carry system/ scopes only: patient/ or user/ scopes alone → invalid_scope; a
    request for more than the client may have is narrowed (the granted scope is a subset of the request)."""
    app = register(auth_server, "asymmetric", SCOPE)
    _refused(_post(auth_server, _request(auth_server, app, scope="patient/*.rs launch/patient")), (400,),
             "invalid_scope")
    r = _post(auth_server, _request(auth_server, app, scope="system/Patient.rs system/Encounter.rs"))
    assert r.status_code == 200 and r.json()["scope"] == "system/Patient.rs"


def test_secret_client_cannot_use_client_credentials(auth_server):
    """Backend services require asymmetric authentication: a client_secret_basic client asking client_credentials
    is refused."""
    app = register(auth_server, "symmetric", SCOPE)
    r = httpx.post(f"{root(auth_server)}/auth/token", auth=(app.client_id, app.secret or ""), timeout=30,
                   data={"grant_type": "client_credentials", "scope": SCOPE})
    _refused(r, error=None)
    assert r.json()["error"] in ("invalid_client", "unauthorized_client")


@pytest.fixture
def jwks_host() -> Iterator[tuple[str, dict[str, Any]]]:
    """A JWKS served over HTTP (Inferno's .well-known/jwks.json)."""
    served: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = orjson.dumps(served.get("jwks") or {"keys": []})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json", served
    httpd.shutdown()
    httpd.server_close()


def test_client_registered_by_jwks_url(auth_server, jwks_host):
    """Inferno asks to be registered with its JWK Set URL: the key is fetched from it; a key not in that set is
    refused."""
    url, served = jwks_host
    key = inferno_key("ES384")
    served["jwks"] = public_jwks(key)
    client, _ = run_db(auth_server, lambda db: clients.register(db, name="Inferno", redirect_uris=[], scope=SCOPE,
                                                                auth_method="private_key_jwt", jwks_uri=url))
    form = {"scope": SCOPE, "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": inferno_assertion(auth_server, client.client_id, key)}
    r = _post(auth_server, form)
    assert r.status_code == 200, r.text
    stranger = inferno_key("ES384")
    form["client_assertion"] = inferno_assertion(auth_server, client.client_id, stranger)
    _refused(_post(auth_server, form), error="invalid_client")
