"""Helpers for the Inferno SMART App Launch test-kit checks (tests/auth/test_inferno_*.py): the requests Inferno
makes, in the shape Inferno makes them (``smart_app_redirect_stu2``, ``smart_token_exchange_stu2_2``,
``smart_token_refresh_stu2``, ``BackendServicesAuthorizationRequestBuilder``), and the assertions of its
``TokenPayloadValidation`` module. No tests here."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth import clients
from tests.auth.oauth_support import (
    REDIRECT,
    add_user,
    auth_params,
    ehr_launch,
    get_code,
    pkce,
    root,
    run_db,
    uid,
)
from tests.conftest import LiveServer

#: Inferno's default scopes (standalone_launch_group_stu2.rb, ehr_launch_group_stu2.rb)
STANDALONE_SCOPES = "launch/patient openid fhirUser offline_access patient/*.rs"
EHR_SCOPES = "launch openid fhirUser offline_access patient/*.rs"
INFERNO_ORIGIN = "https://inferno.example.org"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: fhirUser types Inferno accepts (openid_fhir_user_claim_test.rb)
FHIR_USER_TYPES = {"Patient", "Practitioner", "RelatedPerson", "Person"}


@dataclass
class App:
    """A registered app as Inferno is configured with it."""

    client_id: str
    auth_type: str  # public | symmetric | asymmetric
    secret: str | None = None
    key: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Launch:
    app: App
    patient: str
    user: str
    fhir_user: str
    scope: str
    response: httpx.Response

    @property
    def body(self) -> dict[str, Any]:
        return self.response.json()


def inferno_key(alg: str = "RS384") -> Any:
    """A key like Inferno's smart_jwks.json ones (``use``, ``key_ops``, ``ext`` members)."""
    params = {"kid": uid("k"), "alg": alg, "use": "sig"}
    return (RSAKey.generate_key(2048, parameters=params, private=True) if alg == "RS384"
            else ECKey.generate_key("P-384", parameters=params, private=True))


def public_jwks(key: Any) -> dict[str, Any]:
    """The JWKS Inferno serves: public keys with ``key_ops: ["verify"]`` and ``ext: true``."""
    return {"keys": [{**key.as_dict(private=False), "key_ops": ["verify"], "ext": True}]}


def register(server: LiveServer, auth_type: str, scope: str, alg: str = "RS384") -> App:
    if auth_type == "public":
        c, _ = run_db(server, lambda db: clients.register(db, name="Inferno", redirect_uris=[REDIRECT], scope=scope,
                                                          auth_method="none"))
        return App(c.client_id, auth_type)
    if auth_type == "symmetric":
        c, secret = run_db(server, lambda db: clients.register(db, name="Inferno", redirect_uris=[REDIRECT],
                                                               scope=scope, auth_method="client_secret_basic"))
        return App(c.client_id, auth_type, secret=secret)
    key = inferno_key(alg)
    c, _ = run_db(server, lambda db: clients.register(db, name="Inferno", redirect_uris=[REDIRECT], scope=scope,
                                                      auth_method="private_key_jwt", jwks=public_jwks(key)))
    return App(c.client_id, auth_type, key=key)


def inferno_assertion(server: LiveServer, client_id: str, key: Any, *, exp_in: int = 300, iss: str | None = None,
                      sub: str | None = None, aud: str | None = None, jti: str | None = None,
                      omit: tuple[str, ...] = ()) -> str:
    """ClientAssertionBuilder's assertion: ``iss``, ``sub``, ``aud``, ``exp`` (5 minutes ahead), ``jti``; no
    ``iat``; header ``alg``, ``kid``, ``typ: JWT``."""
    claims = {"iss": iss or client_id, "sub": sub or client_id, "aud": aud or f"{root(server)}/auth/token",
              "exp": int(time.time()) + exp_in, "jti": jti or secrets.token_hex(32)}
    alg = key.as_dict(private=False)["alg"]
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, {k: v for k, v in claims.items() if k not in omit},
                      key, algorithms=[alg])


def credentials(server: LiveServer, app: App, data: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``add_credentials_to_request`` of smart_token_exchange_stu2_2: the form and headers for ``app``."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if app.auth_type == "public":
        return data | {"client_id": app.client_id}, headers | {"Origin": INFERNO_ORIGIN}
    if app.auth_type == "symmetric":
        basic = httpx.BasicAuth(app.client_id, app.secret or "")
        req = basic.auth_flow(httpx.Request("POST", "http://x")).__next__()
        return data, headers | {"Authorization": req.headers["Authorization"]}
    return data | {"client_assertion_type": ASSERTION_TYPE,
                   "client_assertion": inferno_assertion(server, app.client_id, app.key)}, headers


def token_post(server: LiveServer, app: App, data: dict[str, str]) -> httpx.Response:
    form, headers = credentials(server, app, data)
    return httpx.post(f"{root(server)}/auth/token", data=form, headers=headers, timeout=30)


def patient(admin: httpx.Client) -> str:
    pid = uid("inf")
    r = admin.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid, "name": [{"family": "Inferno"}]})
    assert r.status_code in (200, 201), r.text
    return pid


def practitioner(admin: httpx.Client) -> str:
    prid = uid("doc")
    r = admin.put(f"Practitioner/{prid}", json={"resourceType": "Practitioner", "id": prid,
                                                "name": [{"family": "Doctor"}]})
    assert r.status_code in (200, 201), r.text
    return f"Practitioner/{prid}"


def standalone(server: LiveServer, admin: httpx.Client, auth_type: str = "public",
               scope: str = STANDALONE_SCOPES) -> Launch:
    """Inferno's standalone launch (smart_standalone_launch_stu2_2) by a patient user: redirect, code, token."""
    pid = patient(admin)
    app = register(server, auth_type, scope)
    user = add_user(server, f"Patient/{pid}")
    verifier, challenge = pkce()
    code = get_code(server, auth_params(server, app.client_id, scope, challenge), user)
    r = token_post(server, app, {"code": code, "redirect_uri": REDIRECT, "grant_type": "authorization_code",
                                 "code_verifier": verifier})
    return Launch(app, pid, user, f"Patient/{pid}", scope, r)


def ehr(server: LiveServer, admin: httpx.Client, auth_type: str = "public", scope: str = EHR_SCOPES,
        **ctx: Any) -> Launch:
    """Inferno's EHR launch (smart_ehr_launch_stu2_2) by a practitioner: launch value, redirect, code, token."""
    pid = patient(admin)
    fhir_user = practitioner(admin)
    app = register(server, auth_type, scope)
    user = add_user(server, fhir_user)
    launch = ehr_launch(server, patient=pid, fhirUser=fhir_user, **ctx)
    verifier, challenge = pkce()
    code = get_code(server, auth_params(server, app.client_id, scope, challenge, launch=launch), user)
    r = token_post(server, app, {"code": code, "redirect_uri": REDIRECT, "grant_type": "authorization_code",
                                 "code_verifier": verifier})
    return Launch(app, pid, user, fhir_user, scope, r)


def check_token_body(body: dict[str, Any], refresh: bool = False) -> None:
    """smart_token_response_body_stu2_2 / smart_token_refresh_body (TokenPayloadValidation)."""
    for f in ("access_token", "token_type", "expires_in", "scope"):
        assert body.get(f), f"token response lacks {f}: {sorted(body)}"
    for f in ("access_token", "token_type", "scope", "refresh_token"):
        assert f not in body or isinstance(body[f], str), f
    assert isinstance(body["expires_in"], int | float) and not isinstance(body["expires_in"], bool)
    assert body["token_type"].lower() == "bearer"
    ctx = body.get("fhirContext")
    if ctx is not None and not refresh:
        assert isinstance(ctx, list)
        for item in ctx:
            assert isinstance(item, dict) and ({"reference", "canonical", "identifier"} & set(item)), item
            if "reference" in item:
                assert not item["reference"].startswith("http") and "/" in item["reference"], item


def check_no_store(r: httpx.Response) -> None:
    """smart_token_response_headers: Cache-Control contains no-store, Pragma contains no-cache."""
    assert "no-store" in r.headers.get("cache-control", "").lower(), dict(r.headers)
    assert "no-cache" in r.headers.get("pragma", "").lower(), dict(r.headers)
