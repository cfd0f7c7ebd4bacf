"""HTTP endpoints of the authorization server (a FastAPI router mounted by ``app.create_app``).

* discovery: ``/fhir/.well-known/smart-configuration``, ``/fhir/.well-known/openid-configuration``,
  ``/auth/jwks`` (public, no token; CORS is added by ``app.py`` for these and the token/introspect/revoke URLs);
* ``/auth/authorize`` (GET and POST) → ``/auth/login`` → [``/auth/pick``] → ``/auth/consent`` → the app's
  ``redirect_uri`` with ``code`` and ``state`` (or ``error``);
* ``/auth/token`` (Authlib, see :mod:`fhir_server.auth.server`), ``/auth/introspect`` (RFC 7662),
  ``/auth/revoke`` (RFC 7009), ``/auth/launch`` (EHR launch contexts).

The pages keep their state in a signed (JWT HS256 by joserfc, key in ``oauth_key``), HttpOnly, SameSite=Lax cookie
scoped to ``/auth`` (``Secure`` when the issuer is https) that expires after 15 minutes; every form carries a CSRF
token from that cookie. Errors about the client or its redirect_uri are shown on a page, never redirected; other
authorization errors go back to the app (``error``, ``state``). Login and token requests are rate limited per
client address (429 with ``Retry-After``). Logins, failed logins, issued and refused tokens are audited; no
password, token or secret reaches a log line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from fhir_server import audit
from fhir_server.audit import AuditRecord
from fhir_server.auth import clients, discovery, keys, launches, tokens, users
from fhir_server.auth.access import Access
from fhir_server.auth.pages import esc, page
from fhir_server.auth.ratelimit import RateLimiter
from fhir_server.auth.scopes import Scopes
from fhir_server.auth.server import FormRequest, SmartServer
from fhir_server.auth.visibility import visible_patients

__all__ = ["build_router"]

log = logging.getLogger("cares_fhir.auth")
#: Authlib logs issued tokens at DEBUG ("Issue token …"): never below INFO, so no token reaches a log line
logging.getLogger("authlib").setLevel(logging.INFO)

COOKIE = "cares_auth"
SESSION_SECONDS = 15 * 60
_JSON_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LAUNCH_SCOPES = frozenset({"system/launch", "system/*.*", "system/*.cruds", "system/*.write", "system/*.cud"})


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**_JSON_HEADERS, **(headers or {})})


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class _State:
    """Per-application state: the Authlib server (created on the first request, on the serving loop), the
    cookie serializer and the rate limiter."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.settings = svc.settings
        self.limiter = RateLimiter(svc.settings.auth_rate_per_minute)
        self._server: SmartServer | None = None
        self._key: OctKey | None = None
        self.secure = svc.settings.fhir_base.startswith("https://")

    @property
    def server(self) -> SmartServer:
        if self._server is None:
            self._server = SmartServer(self.svc, asyncio.get_running_loop())
        return self._server

    async def key(self) -> OctKey:
        if self._key is None:
            self._key = OctKey.import_key(await keys.session_secret(self.svc.db))
        return self._key

    async def session(self, request: Request) -> dict[str, Any]:
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 8192:
            return {}
        try:
            token = jwt.decode(raw, await self.key(), algorithms=["HS256"])
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(token.claims)
        except (JoseError, ValueError):
            return {}
        data = token.claims.get("s")
        return data if isinstance(data, dict) else {}

    async def save(self, response: Response, data: dict[str, Any]) -> Response:
        value = jwt.encode({"alg": "HS256"}, {"s": data, "exp": int(time.time()) + SESSION_SECONDS}, await self.key(),
                           algorithms=["HS256"])
        response.set_cookie(COOKIE, value, max_age=SESSION_SECONDS, path="/auth",
                            httponly=True, samesite="lax", secure=self.secure)
        return response

    async def audit(self, request: Request, interaction: str, ok: bool, *, client_id: str | None = None,
                    username: str | None = None, fhir_user: str | None = None, status: int = 200,
                    patient: str | None = None, error: str | None = None) -> None:
        """Record an OAuth event: ``patient`` (the launch or chosen patient, when known) becomes an entity
        ``Patient/<id>`` with role Patient; ``error`` (an OAuth error *code* such as ``invalid_grant``, or a fixed
        reason code) goes into outcomeDesc. Never a token, code, secret or password."""
        detail = {"error": error[:64]} if error else {}
        await audit.record(self.svc, AuditRecord(action="E", interaction=interaction, outcome="0" if ok else "4",
                                                 status=status, client_id=(client_id or None) and client_id[:128],
                                                 username=(username or None) and username[:128],
                                                 patients=(patient[:64],) if patient else (),
                                                 fhir_user=fhir_user, source=_address(request), detail=detail))


async def _pairs(request: Request) -> list[tuple[str, str]]:
    """The request's form (POST) or query (GET) parameters, as (name, value) pairs."""
    if request.method == "POST":
        form = await request.form()
        return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return list(request.query_params.multi_items())


def _headers(request: Request) -> dict[str, str]:
    return {k.title(): v for k, v in request.headers.items()}


def _error_redirect(redirect_uri: str, error: str, description: str, state: str | None) -> RedirectResponse:
    params = [("error", error), ("error_description", description)] + ([("state", state)] if state else [])
    return RedirectResponse(add_params_to_uri(redirect_uri, params), status_code=302)


def build_router(svc: Any) -> APIRouter:
    """The authorization server's routes for the application of ``svc``."""
    st = _State(svc)
    settings = svc.settings
    urls = discovery.endpoints(settings)
    router = APIRouter()

    # ---------------------------------------------------------------- discovery
    @router.get("/fhir/.well-known/smart-configuration")
    async def smart_configuration() -> JSONResponse:
        return JSONResponse(discovery.smart_configuration(settings))

    @router.get("/fhir/.well-known/openid-configuration")
    async def openid_configuration() -> JSONResponse:
        return JSONResponse(discovery.openid_configuration(settings))

    @router.get("/auth/jwks")
    async def jwks() -> JSONResponse:
        return JSONResponse(await keys.jwks(svc.db), headers={"Cache-Control": "max-age=300"})

    @router.get("/auth/style.json")
    async def style() -> JSONResponse:
        return JSONResponse({"color_background": "#edeae3", "color_error": "#9e2d2d", "color_highlight": "#69b5ce",
                             "color_modal_backdrop": "", "color_success": "#498e49", "color_text": "#303030",
                             "dim_border_radius": "6px", "dim_font_size": "13px", "dim_spacing_size": "20px",
                             "font_family_body": "sans-serif", "font_family_heading": "sans-serif"})

    # ---------------------------------------------------------------- authorization
    async def validate(req: FormRequest, user: users.User | None) -> Any:
        return await asyncio.to_thread(st.server.get_consent_grant, req, user)

    def authorize_request(pairs: list[tuple[str, str]]) -> FormRequest:
        return FormRequest("GET", urls["authorization_endpoint"], {}, pairs)

    async def launch_context(data: dict[str, str]) -> launches.Launch | None | str:
        """The EHR launch of the request (None: standalone), or an error message."""
        value = data.get("launch")
        if value:
            launch = await launches.resolve(svc.db, value)
            return launch if launch is not None else "unknown or expired launch"
        if "launch" in (data.get("scope") or "").split():
            return "the launch scope needs a launch parameter (EHR launch)"
        return None

    async def session_patient(sess: dict[str, Any]) -> str | None:
        """The patient an authorization in progress is about, when already known: the EHR launch's, or the one
        picked (for the audit trail)."""
        launch = await launch_context(dict(sess.get("req") or []))
        if isinstance(launch, launches.Launch) and launch.patient:
            return launch.patient
        return str(sess["patient"]) if sess.get("patient") else None

    @router.api_route("/auth/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        pairs = await _pairs(request)
        req = authorize_request(pairs)
        data = req.payload.data
        try:
            await validate(req, None)
        except OAuth2Error as e:
            if e.redirect_uri:
                status, body, headers = e(None)
                return RedirectResponse(dict(headers)["Location"], status_code=302)
            return page("error", "Authorization error", 400, message=esc(e.description or e.error))
        redirect_uri, state = data["redirect_uri"], data.get("state")
        if (data.get("aud") or "").rstrip("/") != settings.fhir_base:
            return _error_redirect(redirect_uri, "invalid_request", "aud must be this server's FHIR base URL", state)
        launch = await launch_context(data)
        if isinstance(launch, str):
            return _error_redirect(redirect_uri, "invalid_request", launch, state)
        sess = await st.session(request)
        new = {"req": pairs, "csrf": secrets.token_urlsafe(24), "user": sess.get("user")}
        target = "/auth/consent" if new["user"] else "/auth/login"
        return await st.save(RedirectResponse(target, status_code=303), new)

    async def client_name(sess: dict[str, Any]) -> str:
        cid = dict(sess.get("req") or []).get("client_id", "")
        client = await clients.get(svc.db, cid)
        return client.name if client else cid

    def no_request() -> Response:
        return page("error", "No authorization in progress", 400,
                    message="There is no authorization request in progress (or it expired).")

    def expired() -> Response:
        return page("error", "Session expired", 400, message="The form expired. Start again from the app.")

    def csrf_ok(sess: dict[str, Any], form: dict[str, str]) -> bool:
        return bool(sess.get("csrf")) and secrets.compare_digest(str(sess["csrf"]), form.get("csrf", ""))

    def too_many(wait: int) -> Response:
        resp = page("error", "Too many attempts", 429, message="Too many attempts. Wait a minute and try again.")
        resp.headers["Retry-After"] = str(wait)
        return resp

    @router.get("/auth/login")
    async def login_page(request: Request) -> Response:
        sess = await st.session(request)
        if not sess.get("req"):
            return no_request()
        return page("login", "Sign in", client=esc(await client_name(sess)), csrf=esc(sess["csrf"]), error="")

    @router.post("/auth/login")
    async def login(request: Request) -> Response:
        key = "login:" + _address(request)
        wait = st.limiter.hit(key)
        if wait:
            if st.limiter.first_refusal(key):  # once per address and window: a flood stays cheap
                await st.audit(request, "login-failed", False, status=429, error="too_many_requests")
            return too_many(wait)
        sess = await st.session(request)
        form = dict(await _pairs(request))
        if not sess.get("req") or not csrf_ok(sess, form):
            return expired()
        username = form.get("username", "")[:128]
        user = await users.authenticate(svc.db, username, form.get("password", ""))
        client_id = dict(sess["req"]).get("client_id")
        patient = await session_patient(sess)
        if user is None:
            await st.audit(request, "login-failed", False, client_id=client_id, username=username, status=401,
                           patient=patient, error="invalid_credentials")
            return page("login", "Sign in", 401, client=esc(await client_name(sess)), csrf=esc(sess["csrf"]),
                        error='<p class="error">Wrong username or password.</p>')
        await st.audit(request, "login", True, client_id=client_id, username=user.username, fhir_user=user.fhir_user,
                       patient=patient)
        sess = {**sess, "user": user.username, "csrf": secrets.token_urlsafe(24)}
        return await st.save(RedirectResponse("/auth/consent", status_code=303), sess)

    async def picker_patients(user: users.User, scope: str) -> list[tuple[str, str]] | None:
        """(id, display name) of the patients ``user`` may pick (None: the user may see every patient)."""
        access = Access(client_id="authorize", scopes=Scopes.parse("user/*.rs"), fhir_user=user.fhir_user,
                        username=user.username)
        seen = await visible_patients(svc, access)
        if seen is not None and not seen:
            return []
        sql = "SELECT id, body FROM resource WHERE rtype = %s AND NOT deleted"
        args: list[Any] = ["Patient"]
        if seen is not None:
            ids = sorted(seen)[:200]
            sql += f" AND id IN ({', '.join(['%s'] * len(ids))})"
            args += ids
        async with svc.db.read() as c:
            rows = await c.all(sql + " ORDER BY rkey LIMIT 200", args)
        return [(r[0], _display(r[1], r[0])) for r in rows]

    async def patient_for(sess: dict[str, Any], user: users.User, data: dict[str, str],
                          launch: launches.Launch | None) -> str | None | Response:
        """The patient of the authorization: the EHR launch's, the one picked, the user's own, or a redirect to
        the picker (a Response)."""
        if launch is not None:
            return launch.patient
        if "launch/patient" not in (data.get("scope") or "").split():
            return None
        if sess.get("patient"):
            return str(sess["patient"])
        if user.fhir_user and user.fhir_user.split("/")[0] in ("Patient", "RelatedPerson"):
            own = await picker_patients(user, data.get("scope") or "")
            if own and len(own) == 1:
                return own[0][0]
        return RedirectResponse("/auth/pick", status_code=303)

    async def signed_in(request: Request, *, posted: bool = False
                        ) -> tuple[dict[str, Any], users.User, dict[str, str]] | Response:
        """The session, its signed-in user and (``posted``) the form — or what to answer instead: no authorization
        in progress, an expired form (CSRF), or nobody signed in yet (to the login page)."""
        sess = await st.session(request)
        form = dict(await _pairs(request)) if posted else {}
        if not sess.get("req"):
            return expired() if posted else no_request()
        if posted and not csrf_ok(sess, form):
            return expired()
        user = await users.get(svc.db, sess["user"]) if sess.get("user") else None
        if user is None:
            return RedirectResponse("/auth/login", status_code=303)
        return sess, user, form

    @router.get("/auth/pick")
    async def pick_page(request: Request) -> Response:
        found = await signed_in(request)
        if isinstance(found, Response):
            return found
        sess, user, _ = found
        patients = await picker_patients(user, dict(sess["req"]).get("scope", ""))
        if not patients:
            return page("error", "No patients", 403, message="There is no patient whose record you may open.")
        items = "\n".join(f'<li><button type="submit" name="patient" value="{esc(pid)}">{esc(name)}</button></li>'
                          for pid, name in patients)
        return page("pick", "Choose a patient", client=esc(await client_name(sess)), csrf=esc(sess["csrf"]),
                    patients=items)

    @router.post("/auth/pick")
    async def pick(request: Request) -> Response:
        found = await signed_in(request, posted=True)
        if isinstance(found, Response):
            return found
        sess, user, form = found
        allowed = {pid for pid, _ in (await picker_patients(user, "") or [])}
        if form.get("patient") not in allowed:
            return page("error", "Unknown patient", 403, message="You may not open that patient's record.")
        return await st.save(RedirectResponse("/auth/consent", status_code=303), {**sess, "patient": form["patient"]})

    @router.get("/auth/consent")
    async def consent_page(request: Request) -> Response:
        found = await signed_in(request)
        if isinstance(found, Response):
            return found
        sess, user, _ = found
        data = dict(sess["req"])
        launch = await launch_context(data)
        if isinstance(launch, str):
            return page("error", "Launch expired", 400, message=esc(launch))
        patient = await patient_for(sess, user, data, launch)
        if isinstance(patient, Response):
            return patient
        client = await clients.get(svc.db, data.get("client_id", ""))
        granted = client.get_allowed_scope(data.get("scope")) if client else ""
        scopes = "\n".join(f"<li><code>{esc(s)}</code></li>" for s in granted.split())
        return page("consent", "Authorize application", client=esc(await client_name(sess)),
                    user=esc(user.display or user.username), csrf=esc(sess["csrf"]), scopes=scopes,
                    patient=f"<p>Patient: <strong>{esc(patient)}</strong></p>" if patient else "")

    @router.post("/auth/consent")
    async def consent(request: Request) -> Response:
        found = await signed_in(request, posted=True)
        if isinstance(found, Response):
            return found
        sess, user, form = found
        data = dict(sess["req"])
        launch = await launch_context(data)
        if isinstance(launch, str):
            return _error_redirect(data["redirect_uri"], "invalid_request", launch, data.get("state"))
        approve = form.get("decision") == "approve"
        patient = await patient_for(sess, user, data, launch) if approve else None
        if isinstance(patient, Response):
            return patient
        req = authorize_request(sess["req"])
        ctx: dict[str, Any] = {"need_patient_banner": True,
                               "smart_style_url": f"{discovery.auth_root(settings)}/style.json"}
        if launch is not None:
            ctx.update(launch.context)
        req.smart_context = {"patient": patient, "encounter": launch.encounter if launch else None,
                             "fhir_user": (launch.fhir_user if launch else None) or user.fhir_user, "context": ctx}

        def run() -> tuple[int, Any, Any]:
            grant = st.server.get_consent_grant(req, user)
            return st.server.create_authorization_response(req, user if approve else None, grant)

        audited = {"client_id": data.get("client_id"), "username": user.username, "fhir_user": user.fhir_user,
                   "patient": patient or (launch.patient if launch else None) or sess.get("patient")}
        try:
            status, _, headers = await asyncio.to_thread(run)
        except OAuth2Error as e:
            await st.audit(request, "authorize-denied", False, status=e.status_code, error=e.error, **audited)
            if e.redirect_uri:
                headers = e(None)[2]
            else:
                return page("error", "Authorization error", 400, message=esc(e.description or e.error))
        else:
            if approve:
                await st.audit(request, "authorize", True, **audited)
            else:
                await st.audit(request, "authorize-denied", False, status=403, error="access_denied", **audited)
        rest = {"user": sess.get("user"), "csrf": secrets.token_urlsafe(24)}
        return await st.save(RedirectResponse(dict(headers)["Location"], status_code=302), rest)

    # ---------------------------------------------------------------- token
    @router.post("/auth/token")
    async def token(request: Request) -> Response:
        key = "token:" + _address(request)
        wait = st.limiter.hit(key)
        if wait:
            if st.limiter.first_refusal(key):
                await st.audit(request, "token-denied", False, status=429, error="too_many_requests")
            return _oauth_error(429, "too_many_requests", "too many token requests; retry later",
                                {"Retry-After": str(wait)})
        pairs = await _pairs(request)
        req = FormRequest("POST", urls["token_endpoint"], _headers(request), pairs)
        try:
            status, body, headers = await asyncio.to_thread(st.server.create_token_response, req)
        except Exception as e:  # noqa: BLE001 - an unexpected failure is a server_error, never a stack trace
            log.error("token request failed: %s", type(e).__name__)
            status, body, headers = 500, {"error": "server_error", "error_description": "internal error"}, []
        client_id = req.client.client_id if req.client else req.payload.data.get("client_id")
        user = req.user if isinstance(req.user, users.User) else None
        source: Any = req.authorization_code or (req.refresh_token.rec if req.refresh_token else None)
        patient = (body.get("patient") if isinstance(body, dict) and status == 200 else None) \
            or getattr(source, "patient", None)
        error = body.get("error") if isinstance(body, dict) and status != 200 else None
        await st.audit(request, "token" if status == 200 else "token-denied", status == 200, client_id=client_id,
                       username=user.username if user and req.payload.grant_type != "client_credentials" else None,
                       fhir_user=user.fhir_user if user else None, status=status, patient=patient,
                       error=error if isinstance(error, str) else None)
        if status != 200 and isinstance(body, dict):
            body.setdefault("error_description", str(body.get("error", "error")).replace("_", " "))
        out = {**dict(headers), **_JSON_HEADERS}
        out.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers=out)

    # ---------------------------------------------------------------- introspection / revocation
    async def caller(request: Request, pairs: list[tuple[str, str]], methods: list[str],
                     endpoint: str) -> tuple[clients.Client | None, tokens.TokenRecord | None]:
        """The authenticated client (``methods``), or the bearer token of a backend service (``system/``)."""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            rec = await tokens.lookup(svc.db, auth[7:].strip())
            return None, rec if rec is not None and "system" in Scopes.parse(rec.scope).contexts() else None
        req = FormRequest("POST", urls[endpoint], _headers(request), pairs)
        try:
            client = await asyncio.to_thread(st.server.authenticate_client, req, methods, endpoint)
        except OAuth2Error:
            return None, None
        return client, None

    @router.post("/auth/introspect")
    async def introspect(request: Request) -> Response:
        pairs = await _pairs(request)
        client, bearer = await caller(request, pairs, ["client_secret_basic", "private_key_jwt"],
                                      "introspection_endpoint")
        if client is None and bearer is None:
            return _oauth_error(401, "invalid_client", "authenticate as a confidential client or with a bearer "
                                "token holding a system/ scope", {"WWW-Authenticate": 'Basic realm="cares-fhir"'})
        value = dict(pairs).get("token", "")
        rec = await tokens.find(svc.db, value) if value and len(value) <= 512 else None
        if rec is None or not rec.active():
            return JSONResponse({"active": False}, headers=_JSON_HEADERS)
        body: dict[str, Any] = {"active": True, "scope": rec.scope, "client_id": rec.client_id,
                                "exp": rec.expires_at // 1_000_000, "iat": rec.issued_at // 1_000_000,
                                "sub": rec.username or rec.client_id, "iss": settings.fhir_base,
                                "token_type": "Bearer" if rec.kind == "access" else "refresh_token"}
        if rec.username:
            body["username"] = rec.username
        if rec.patient:
            body["patient"] = rec.patient
        if rec.encounter:
            body["encounter"] = rec.encounter
        if rec.fhir_user:
            body["fhirUser"] = f"{settings.fhir_base}/{rec.fhir_user}"
        # token-introspection.html: every launch context parameter of the token response
        body.update({k: v for k, v in (rec.context or {}).items() if k in launches.CONTEXT_PARAMETERS})
        return JSONResponse(body, headers=_JSON_HEADERS)

    @router.post("/auth/revoke")
    async def revoke(request: Request) -> Response:
        pairs = await _pairs(request)
        client, bearer = await caller(request, pairs, ["client_secret_basic", "private_key_jwt", "none"],
                                      "revocation_endpoint")
        if client is None and bearer is None:
            return _oauth_error(401, "invalid_client", "client authentication failed",
                                {"WWW-Authenticate": 'Basic realm="cares-fhir"'})
        value = dict(pairs).get("token", "")
        rec = await tokens.find(svc.db, value) if value and len(value) <= 512 else None
        owner = client.client_id if client else (bearer.client_id if bearer else "")
        if rec is not None and secrets.compare_digest(rec.client_id, owner):
            if rec.kind == "refresh":
                await tokens.revoke_grant(svc.db, rec.grant_id)  # RFC 7009 §2.1: its access tokens too
            else:
                await tokens.revoke(svc.db, value)
        return Response(status_code=200, headers=_JSON_HEADERS)

    # ---------------------------------------------------------------- EHR launch
    @router.post("/auth/launch")
    async def create_launch(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        rec = await tokens.lookup(svc.db, auth[7:].strip()) if auth[:7].lower() == "bearer " else None
        if rec is None:
            return _oauth_error(401, "invalid_token", "a bearer token is required",
                                {"WWW-Authenticate": 'Bearer realm="cares-fhir"'})
        if not _LAUNCH_SCOPES & set(rec.scope.split()):
            return _oauth_error(403, "insufficient_scope", "the token needs the system/launch scope")
        try:
            body = orjson.loads(await request.body())
            launch = launches.validate(body)
        except orjson.JSONDecodeError:
            return _oauth_error(400, "invalid_request", "the body must be JSON")
        except ValueError as e:
            return _oauth_error(400, "invalid_request", str(e))
        value = await launches.create(svc.db, launch, ttl_seconds=settings.launch_seconds, created_by=rec.client_id)
        return JSONResponse({"launch": value, "expires_in": settings.launch_seconds}, status_code=201,
                            headers=_JSON_HEADERS)

    return router


def _display(body: str | None, pid: str) -> str:
    try:
        res = orjson.loads(body or "{}")
        name = (res.get("name") or [{}])[0]
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
        return text or f"Patient {pid}"
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return f"Patient {pid}"


def launch_url(app_url: str, fhir_base: str, launch: str) -> str:
    """``<app-url>?iss=<fhir base>&launch=<value>`` (the URL an EHR opens to launch an app)."""
    sep = "&" if "?" in app_url else "?"
    return f"{app_url}{sep}{urlencode({'iss': fhir_base, 'launch': launch})}"


