"""Refresh-token rotation under concurrency (issue 7 §2/§6): a refresh token is consumed atomically with the issue
of its successors, so of concurrent redemptions of one refresh token exactly one succeeds; the others get
``invalid_grant`` (400) and — a reuse, per the OAuth 2.0 Security BCP (RFC 9700 §4.14.2) — end the grant, the
winner's new tokens included. On SQLite and PostgreSQL, through HTTP against the live server."""

from __future__ import annotations

import asyncio

import httpx

from fhir_server.auth import tokens
from tests.auth.oauth_support import fhir_get, public_client, root, run_db, uid
from tests.conftest import LiveServer

SCOPE = "launch/patient offline_access patient/*.rs"
ROUNDS = 15


def _patient(admin: httpx.Client) -> str:
    pid = uid("race")
    r = admin.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid, "name": [{"family": "Race"}]})
    assert r.status_code in (200, 201), r.text
    return pid


def _refresh_tokens(server: LiveServer, client_id: str, pid: str, n: int) -> list[str]:
    """``n`` refresh tokens, each of its own grant (as a code exchange with ``offline_access`` leaves them)."""
    async def go(db: object) -> list[str]:
        out = []
        for _ in range(n):
            value, _ = await tokens.issue(db, kind="refresh", client_id=client_id, scope=SCOPE,  # type: ignore[arg-type]
                                          ttl_seconds=3600, patient=pid)
            out.append(value)
        return out

    return run_db(server, go)


async def _race(url: str, client_id: str, refresh: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as h:
        return list(await asyncio.gather(*(
            h.post(url, data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id})
            for _ in range(n))))


def _one_winner(responses: list[httpx.Response]) -> dict:
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 1, [(r.status_code, r.text[:200]) for r in responses]
    for r in responses:
        if r.status_code != 200:
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
            assert r.headers["cache-control"] == "no-store"
    return ok[0].json()


def test_concurrent_refreshes_exactly_one_wins(auth_server: LiveServer, admin: httpx.Client) -> None:
    pid = _patient(admin)
    client_id = public_client(auth_server, SCOPE)
    url = f"{root(auth_server)}/auth/token"
    for refresh in _refresh_tokens(auth_server, client_id, pid, ROUNDS):
        won = _one_winner(asyncio.run(_race(url, client_id, refresh, 2)))
        assert won["patient"] == pid and won["access_token"] and won["refresh_token"] != refresh
    # more than two at once: still exactly one
    for refresh in _refresh_tokens(auth_server, client_id, pid, 3):
        _one_winner(asyncio.run(_race(url, client_id, refresh, 5)))


def test_race_loser_ends_the_grant(auth_server: LiveServer, admin: httpx.Client) -> None:
    """The losing redemption is a reuse: the winner's new access and refresh tokens are revoked with the grant."""
    pid = _patient(admin)
    client_id = public_client(auth_server, SCOPE)
    url = f"{root(auth_server)}/auth/token"
    [refresh] = _refresh_tokens(auth_server, client_id, pid, 1)
    won = _one_winner(asyncio.run(_race(url, client_id, refresh, 2)))
    assert fhir_get(auth_server, f"Patient/{pid}", won["access_token"]).status_code == 401
    r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": won["refresh_token"],
                              "client_id": client_id}, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_sequential_rotation_keeps_the_grant(auth_server: LiveServer, admin: httpx.Client) -> None:
    """Without a reuse, rotation goes on: each new refresh token works once and its access token is active."""
    pid = _patient(admin)
    client_id = public_client(auth_server, SCOPE)
    url = f"{root(auth_server)}/auth/token"
    [refresh] = _refresh_tokens(auth_server, client_id, pid, 1)
    for _ in range(3):
        r = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id},
                       timeout=30)
        assert r.status_code == 200, r.text
        t = r.json()
        assert fhir_get(auth_server, f"Patient/{pid}", t["access_token"]).status_code == 200
        refresh = t["refresh_token"]
