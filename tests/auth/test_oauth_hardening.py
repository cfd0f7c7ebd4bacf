"""Hardening of the authorization server (issue 7 points 8, 9): the audit calls for logins and tokens, and the
per-address rate limit of the login and token endpoints (429 with Retry-After)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server import audit
from fhir_server.auth.ratelimit import RateLimiter
from fhir_server.config import Settings
from tests.auth.oauth_support import (
    add_user,
    auth_params,
    backend_client,
    backend_token,
    browser,
    decide,
    exchange,
    login,
    pkce,
    public_client,
    query,
    root,
    start,
)
from tests.conftest import LiveServer, _free_port

SCOPE = "launch/patient patient/*.rs"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[audit.AuditRecord]:
    seen: list[audit.AuditRecord] = []

    async def fake(svc: Any, rec: audit.AuditRecord, conn: Any = None) -> None:
        seen.append(rec)

    monkeypatch.setattr(audit, "record", fake)
    return seen


def test_logins_and_tokens_are_audited(auth_server, admin, calls):
    admin.put("Patient/audit-kid", json={"resourceType": "Patient", "id": "audit-kid"})
    client_id = public_client(auth_server, SCOPE)
    user = add_user(auth_server, "Patient/audit-kid")
    verifier, challenge = pkce()
    with browser(auth_server) as b:
        start(b, auth_params(auth_server, client_id, SCOPE, challenge))
        assert login(b, user, "wrong password").status_code == 401
        assert login(b, user).status_code == 303
        code = query(decide(b).headers["location"])["code"]
    assert exchange(auth_server, client_id, code, verifier).status_code == 200
    assert exchange(auth_server, client_id, code, verifier).status_code == 400
    by = {r.interaction: r for r in calls}
    failed, ok, issued, denied = by["login-failed"], by["login"], by["token"], by["token-denied"]
    assert (failed.action, failed.outcome, failed.username, failed.client_id) == ("E", "4", user, client_id)
    assert (ok.outcome, ok.username, ok.fhir_user, ok.client_id) == ("0", user, "Patient/audit-kid", client_id)
    assert (issued.outcome, issued.client_id, issued.username) == ("0", client_id, user)
    assert (denied.outcome, denied.client_id) == ("4", client_id)
    assert all(r.source == "127.0.0.1" for r in (failed, ok, issued, denied))
    # a backend service's token is audited without a user
    sys_id, key = backend_client(auth_server, "system/Patient.rs")
    calls.clear()
    assert backend_token(auth_server, sys_id, key, "system/Patient.rs").status_code == 200
    assert [(r.interaction, r.client_id, r.username) for r in calls] == [("token", sys_id, None)]


@pytest.fixture
def limited_server(tmp_path) -> Iterator[LiveServer]:
    srv = LiveServer(Settings(host="127.0.0.1", port=_free_port(), database_url=f"sqlite:///{tmp_path / 'rl.db'}",
                              no_auth=False, auth_rate_per_minute=3)).start()
    yield srv
    srv.stop()


def test_rate_limit(limited_server, calls):
    url = f"{root(limited_server)}/auth/token"
    for _ in range(3):
        assert httpx.post(url, data={"grant_type": "client_credentials"}, timeout=30).status_code in (400, 401)
    for _ in range(3):  # only the first refusal in the window is audited
        r = httpx.post(url, data={"grant_type": "client_credentials"}, timeout=30)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["error"]
    # the login form has its own budget
    for _ in range(3):
        assert httpx.post(f"{root(limited_server)}/auth/login", data={"username": "a", "password": "b"},
                          timeout=30).status_code == 400  # no authorization in progress
    for _ in range(2):
        r = httpx.post(f"{root(limited_server)}/auth/login", data={"username": "a", "password": "b"}, timeout=30)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # the first refusal per address and window is audited as a denial (issue 7 point 8), with reason and address
    refused = [(c.interaction, c.outcome, c.status, c.detail.get("error"), c.source) for c in calls if c.status == 429]
    assert refused == [("token-denied", "4", 429, "too_many_requests", "127.0.0.1"),
                       ("login-failed", "4", 429, "too_many_requests", "127.0.0.1")]


def test_rate_limiter_window():
    rl = RateLimiter(2, window=0.2)
    assert rl.hit("a") == 0 and rl.hit("a") == 0 and rl.hit("a") >= 1
    assert rl.hit("b") == 0  # per address
    import time

    assert rl.first_refusal("a") and not rl.first_refusal("a") and rl.first_refusal("b")
    time.sleep(0.25)
    assert rl.hit("a") == 0
    assert rl.first_refusal("a")  # a new window: reported again
