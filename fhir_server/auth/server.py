"""The OAuth 2 / OpenID Connect machinery: Authlib's ``AuthorizationServer`` with SMART's grants.

Grants: ``authorization_code`` (PKCE S256 required, one-time codes, OpenID ``id_token``), ``refresh_token``
(rotated on use, consumed atomically; a second redemption ends the grant), ``client_credentials`` (backend
services: ``private_key_jwt`` only, ``system/`` scopes only).
Client authentication: ``none`` (public), ``client_secret_basic`` (argon2), ``private_key_jwt`` (RFC 7523,
RS384/ES384 assertions, ``exp`` at most 5 minutes ahead, ``jti`` stored and a replay refused, clock skew
tolerance :data:`CLOCK_SKEW_SECONDS`).

Bridge decision: Authlib's server is synchronous. Each token/authorize call runs in a worker thread
(``asyncio.to_thread``) and every storage hook hands a coroutine back to the server's event loop
(``asyncio.run_coroutine_threadsafe(...).result()``), so Authlib works on the same async ``Database`` (and the same
``tokens.issue`` / ``tokens.lookup`` table format) as the rest of the server; no second, synchronous engine.

Tokens are the opaque ones of :mod:`fhir_server.auth.tokens` (Authlib's token dict gets the stored values in
``save_token``); authorization codes are stored hashed in ``oauth_code``: a code is marked used when it is
redeemed, and a second redemption is refused and revokes everything issued from it (``tokens.revoke_grant``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_server.auth import clients, keys, launches, tokens
from fhir_server.auth.discovery import endpoints
from fhir_server.auth.users import User

__all__ = ["CLOCK_SKEW_SECONDS", "FormRequest", "SmartServer"]

#: Tolerated clock difference between a client and this server for client assertions (``exp``, ``iat``, ``nbf``).
CLOCK_SKEW_SECONDS = 60
#: A client assertion may expire at most this far in the future (SMART Backend Services).
MAX_ASSERTION_SECONDS = 300
ASSERTION_ALGS = ["RS384", "ES384"]
_JWKS_MAX_BYTES = 256 * 1024


class _Payload(OAuth2Payload):
    def __init__(self, data: dict[str, str], datalist: dict[str, list[str]]) -> None:
        self._data = data
        self._datalist = datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class FormRequest(OAuth2Request):
    """An already-parsed HTTP request for Authlib (form or query parameters, headers)."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], pairs: list[tuple[str, str]]) -> None:
        # TLS is terminated in front of the server: Authlib's https check is about the public URL, not this hop
        super().__init__(method, "https://" + uri.split("://", 1)[-1], headers=headers)
        datalist: dict[str, list[str]] = {}
        for k, v in pairs:
            datalist.setdefault(k, []).append(v)
        self._form = {k: v[0] for k, v in datalist.items()}
        self.payload = _Payload(self._form, datalist)
        self.smart_context: dict[str, Any] = {}  # patient / encounter / fhirUser / extras chosen at authorization

    @property
    def args(self) -> dict[str, str]:
        return self._form

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class CodeRecord:
    """A stored authorization code (Authlib's authorization code model)."""

    client_id: str
    username: str | None
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    patient: str | None
    encounter: str | None
    fhir_user: str | None
    context: dict[str, Any] | None
    grant_id: str
    issued_at: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.issued_at // 1_000_000

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class RefreshRecord:
    """A stored refresh token being redeemed (Authlib's token model)."""

    rec: tokens.TokenRecord
    value: str

    def check_client(self, client: clients.Client) -> bool:
        return secrets.compare_digest(self.rec.client_id, client.client_id)

    def get_scope(self) -> str:
        return self.rec.scope


def _now_us() -> int:
    return time.time_ns() // 1000


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class Pkce(CodeChallenge):
    """PKCE with ``S256`` only, required for every client (``plain`` or no challenge: ``invalid_request``)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: CodeRecord) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord) -> str | None:
        return authorization_code.code_challenge_method


class OpenID(OpenIDCode):
    """The OpenID Connect ``id_token``: RS256 with the server's active key (``kid`` in the header), ``iss`` = the
    FHIR base URL, ``aud`` = the client id, ``sub`` = the username, ``fhirUser`` = the user's resource URL."""

    def __init__(self, server: SmartServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False

    def resolve_client_private_key(self, client: Any) -> Any:
        return self.server.sync(keys.active_key(self.server.svc.db))

    def get_client_algorithm(self, client: Any) -> str:
        return keys.SIGNING_ALG

    def get_encode_header(self, client: Any) -> dict[str, str]:
        key = self.resolve_client_private_key(client)
        return {"alg": keys.SIGNING_ALG, "kid": str(key.kid), "typ": "JWT"}

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        return {"iss": self.server.issuer, "aud": client.get_client_id()}

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        info: dict[str, Any] = {"sub": user.username}
        if "fhirUser" in scope.split() and user.fhir_user:
            info["fhirUser"] = f"{self.server.issuer}/{user.fhir_user}"
        if user.display and "profile" in scope.split():
            info["name"] = user.display
        return info


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (RFC 7523, SMART Backend Services): the assertion is signed
    RS384 or ES384 by a key of the client's JWKS (registered, or fetched from its ``jwks_uri``), ``iss`` = ``sub`` =
    the client id, ``aud`` = the token endpoint URL, ``exp`` no more than 5 minutes ahead, a ``jti`` used once.
    Clock skew: ``exp``/``nbf``/``iat`` are checked with :data:`CLOCK_SKEW_SECONDS` of leeway."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: SmartServer) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW_SECONDS)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.urls["token_endpoint"]]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        return self.server.sync(self.server.store_jti(str(claims["sub"]), jti, int(claims["exp"])))

    def resolve_client_public_key(self, client: clients.Client) -> KeySet:
        try:
            if client.jwks:
                return KeySet.import_key_set(client.jwks)
            if client.jwks_uri:
                with httpx.Client(timeout=5, follow_redirects=False) as h:
                    r = h.get(client.jwks_uri)
                if r.status_code != 200 or len(r.content) > _JWKS_MAX_BYTES:
                    raise InvalidClientError(description="the client's jwks_uri could not be read")
                return KeySet.import_key_set(r.json())
        except (JoseError, ValueError, TypeError, httpx.HTTPError) as e:
            raise InvalidClientError(description="the client's JWKS is not usable") from e
        raise InvalidClientError(description="the client has no JWKS")

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGS)
        except (JoseError, ValueError) as e:
            raise InvalidClientError(description="invalid client assertion (signature, key or algorithm)") from e
        exp = token.claims.get("exp")
        if not isinstance(exp, int) or exp > time.time() + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS:
            raise InvalidClientError(description="the client assertion's exp must be at most 5 minutes ahead")
        self.verify_claims(token.claims)
        return token.claims


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt", "none"]
    server: SmartServer

    def save_authorization_code(self, code: str, request: FormRequest) -> None:
        self.server.sync(self.server.store_code(code, request))

    def query_authorization_code(self, code: str, client: clients.Client) -> CodeRecord | None:
        return self.server.sync(self.server.take_code(code, client.client_id))

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        return None  # marked used when redeemed (take_code)

    def authenticate_user(self, authorization_code: CodeRecord) -> User:
        return User(authorization_code.username or authorization_code.client_id, authorization_code.fhir_user,
                    None, ())


class RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: SmartServer

    def _validate_token_scope(self, token: RefreshRecord) -> None:
        """The scope asked at a refresh may only narrow the granted one (``patient/*.rs`` → ``patient/Patient.rs``
        is allowed, anything not within it is ``invalid_scope``)."""
        asked = self.request.payload.scope
        if asked and clients.allowed_scope(asked, token.get_scope()).split() != list(dict.fromkeys(asked.split())):
            raise InvalidScopeError()

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        if not refresh_token or len(refresh_token) > 512:
            return None
        rec = self.server.sync(tokens.find(self.server.svc.db, refresh_token))
        if rec is None or rec.kind != "refresh":
            return None
        if rec.revoked:  # a rotated (or revoked) refresh token used again: end the whole grant
            self.server.sync(tokens.revoke_grant(self.server.svc.db, rec.grant_id))
            return None
        return RefreshRecord(rec, refresh_token) if rec.active() else None

    def authenticate_user(self, refresh_token: RefreshRecord) -> User:
        return User(refresh_token.rec.username or refresh_token.rec.client_id, refresh_token.rec.fhir_user, None, ())

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        return None  # consumed atomically with the issue of its successors (SmartServer._save_token)


class BackendGrant(ClientCredentialsGrant):
    """SMART Backend Services: ``private_key_jwt`` only; granted = the requested ``system/`` scopes within the
    client's registered scopes (may be narrower than asked; none left: ``invalid_scope``)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        asked = " ".join(w for w in (self.request.payload.scope or "").split() if w.startswith("system/"))
        granted = clients.allowed_scope(asked, self.request.client.scope)
        if not granted:
            raise InvalidScopeError("no requested system/ scope may be granted to this client")
        self.request.scope = granted

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class SmartServer(AuthorizationServer):
    """Authlib's authorization server on the CARES database; call it from a worker thread (see the module doc)."""

    def __init__(self, svc: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.svc = svc
        self.settings = svc.settings
        self.loop = loop
        self.issuer = self.settings.fhir_base
        self.urls = endpoints(self.settings)
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))
        self.register_grant(CodeGrant, [Pkce(required=True), OpenID(self)])
        self.register_grant(RefreshGrant)
        self.register_grant(BackendGrant)

    # --- bridge
    def sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the server's event loop and wait for it (called from the worker thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    # --- Authlib framework hooks
    def query_client(self, client_id: str) -> clients.Client | None:
        return self.sync(clients.get(self.svc.db, client_id))

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def _generate(self, grant_type: str, client: Any, user: Any = None, scope: str | None = None,
                  expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        token: dict[str, Any] = {"token_type": "Bearer", "expires_in": self._access_seconds(grant_type),
                                 "scope": scope or ""}
        words = (scope or "").split()
        if include_refresh_token and grant_type != "client_credentials" and (
                "offline_access" in words or "online_access" in words):
            token["refresh_token"] = ""  # issued by save_token
        return token

    def _access_seconds(self, grant_type: str | None) -> int:
        """Access-token lifetime: backend services tokens are short-lived (backend-services.html: expires_in SHOULD
        NOT exceed 300 seconds)."""
        if grant_type == "client_credentials":
            return min(self.settings.backend_token_seconds, self.settings.access_token_seconds)
        return self.settings.access_token_seconds

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        self.sync(self._save_token(token, request))

    async def _save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        src: Any = request.authorization_code or (request.refresh_token.rec if request.refresh_token else None)
        username = getattr(src, "username", None)
        patient = getattr(src, "patient", None)
        encounter = getattr(src, "encounter", None)
        fhir_user = getattr(src, "fhir_user", None)
        context = getattr(src, "context", None)
        grant_id = getattr(src, "grant_id", None) or secrets.token_hex(16)
        common = {"client_id": request.client.client_id, "scope": token["scope"], "username": username,
                  "patient": patient, "encounter": encounter, "fhir_user": fhir_user, "context": context,
                  "grant_id": grant_id}
        db = self.svc.db
        reused = False
        async with db.write() as c:
            # a refresh token is consumed in the transaction that issues its successors: of two concurrent
            # redemptions exactly one updates the row (PostgreSQL: the second waits for the first's row lock, then
            # finds it revoked; SQLite: writers are serialised), so only one gets new tokens
            if request.refresh_token is not None and not await tokens.consume_refresh(request.refresh_token.value, c):
                # redeemed before (a race, or a replay of a rotated token): per the OAuth 2.0 Security BCP
                # (RFC 9700 §4.14.2) the whole grant ends; committed, with nothing issued
                await tokens.revoke_grant(db, grant_id, conn=c)
                reused = True
            else:
                access, _ = await tokens.issue(db, kind="access", ttl_seconds=token["expires_in"], conn=c, **common)
                token["access_token"] = access
                if "refresh_token" in token:
                    refresh, _ = await tokens.issue(db, kind="refresh",
                                                    ttl_seconds=self.settings.refresh_token_seconds, conn=c, **common)
                    token["refresh_token"] = refresh
        if reused:
            raise InvalidGrantError("the refresh token was already used")
        if patient:
            token["patient"] = patient
        if encounter:
            token["encounter"] = encounter
        for k, v in (context or {}).items():
            if k in launches.CONTEXT_PARAMETERS:
                token[k] = v

    # --- storage of codes and client-assertion ids
    async def store_code(self, code: str, request: FormRequest) -> None:
        ctx = request.smart_context
        data = request.payload.data
        now = _now_us()
        async with self.svc.db.write() as c:
            await c.run(
                "INSERT INTO oauth_code (code_hash, client_id, username, redirect_uri, scope, code_challenge, "
                "code_challenge_method, nonce, patient, encounter, fhir_user, context, grant_id, issued_at, "
                "expires_at, used) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (_code_hash(code), request.client.client_id, request.user.username, data.get("redirect_uri"),
                 request.scope, data.get("code_challenge"), data.get("code_challenge_method"), data.get("nonce"),
                 ctx.get("patient"), ctx.get("encounter"), ctx.get("fhir_user"),
                 orjson.dumps(ctx.get("context") or {}).decode(), secrets.token_hex(16), now,
                 now + min(self.settings.code_seconds, 60) * 1_000_000, False))

    async def take_code(self, code: str, client_id: str) -> CodeRecord | None:
        """The code's record, marked used; None when unknown, another client's, expired or used before (then
        everything issued from it is revoked)."""
        if not code or len(code) > 256:
            return None
        h = _code_hash(code)
        async with self.svc.db.write() as c:
            row = await c.one("SELECT client_id, username, redirect_uri, scope, code_challenge, code_challenge_method,"
                              " nonce, patient, encounter, fhir_user, context, grant_id, issued_at, expires_at, used "
                              "FROM oauth_code WHERE code_hash = %s", (h,))
            if row is None or not secrets.compare_digest(row[0], client_id):
                return None
            if row[14]:
                await tokens.revoke_grant(self.svc.db, row[11], conn=c)
                return None
            if int(row[13]) <= _now_us():
                return None
            if await c.run("UPDATE oauth_code SET used = %s WHERE code_hash = %s AND NOT used", (True, h)) != 1:
                return None
        return CodeRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                          orjson.loads(row[10]) if row[10] else None, row[11], int(row[12]))

    async def store_jti(self, client_id: str, jti: str, exp: int) -> bool:
        """Remember a client assertion's ``jti`` until it expires; False when it was seen before (a replay)."""
        now = _now_us()
        async with self.svc.db.write() as c:
            await c.run("DELETE FROM oauth_jti WHERE expires_at < %s", (now - CLOCK_SKEW_SECONDS * 1_000_000,))
            n = await c.run("INSERT INTO oauth_jti (client_id, jti, expires_at) VALUES (%s, %s, %s) "
                            "ON CONFLICT DO NOTHING", (client_id, jti, (exp + CLOCK_SKEW_SECONDS) * 1_000_000))
        return n == 1
