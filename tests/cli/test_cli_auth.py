"""The SMART administration commands: clients add|list, users add|list, launch, keys rotate|list (both backends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

from joserfc.jwk import RSAKey

from fhir_server.auth import clients, keys, launches, passwords, users
from tests.auth.oauth_support import on_database

CLI = [sys.executable, "-m", "fhir_server"]


def _run(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--database-url", url], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_clients_add_and_list(fresh_db_url, tmp_path):
    r = _run(fresh_db_url, "clients", "add", "--name", "Care app", "--redirect-uri", "https://app/cb",
             "--redirect-uri", "https://app/cb2", "--scopes", "launch/patient patient/*.rs", "--public")
    assert r.returncode == 0, r.stderr
    public_id = r.stdout.split("client_id: ")[1].split()[0]
    assert "client_secret" not in r.stdout
    r = _run(fresh_db_url, "clients", "add", "--name", "Confidential", "--redirect-uri", "https://c/cb",
             "--scopes", "user/*.rs", "--secret")
    assert r.returncode == 0, r.stderr
    secret_id = r.stdout.split("client_id: ")[1].split()[0]
    secret = r.stdout.split("client_secret: ")[1].split()[0]
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS384"}, private=True)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    r = _run(fresh_db_url, "clients", "add", "--name", "Backend", "--scopes", "system/*.rs",
             "--jwks-file", str(tmp_path / "jwks.json"))
    assert r.returncode == 0, r.stderr
    backend_id = r.stdout.split("client_id: ")[1].split()[0]

    pub = on_database(fresh_db_url, lambda db: clients.get(db, public_id))
    assert pub.auth_method == "none" and pub.redirect_uris == ["https://app/cb", "https://app/cb2"]
    conf = on_database(fresh_db_url, lambda db: clients.get(db, secret_id))
    assert conf.auth_method == "client_secret_basic" and secret not in conf.secret_hash
    assert conf.secret_hash.startswith("$argon2") and passwords.verify(conf.secret_hash, secret)
    back = on_database(fresh_db_url, lambda db: clients.get(db, backend_id))
    assert back.auth_method == "private_key_jwt" and back.jwks["keys"][0]["kid"] == "k1"

    out = _run(fresh_db_url, "clients", "list").stdout
    assert public_id in out and secret_id in out and backend_id in out and secret not in out
    # an app without a redirect URI, or a bad JWKS file: refused
    assert _run(fresh_db_url, "clients", "add", "--name", "x", "--scopes", "a").returncode == 2
    (tmp_path / "bad.json").write_text("not json")
    assert _run(fresh_db_url, "clients", "add", "--name", "x", "--scopes", "a",
                "--jwks-file", str(tmp_path / "bad.json")).returncode == 2


def test_users_add_and_list(fresh_db_url):
    r = _run(fresh_db_url, "users", "add", "--username", "cc1", "--fhir-user", "Practitioner/1",
             "--role", "care-coordinator", "--display", "Casey Coordinator", "--password-stdin",
             stdin="s3cret-password\n")
    assert r.returncode == 0, r.stderr
    assert "s3cret-password" not in r.stdout + r.stderr
    user = on_database(fresh_db_url, lambda db: users.authenticate(db, "cc1", "s3cret-password"))
    assert user is not None and user.fhir_user == "Practitioner/1" and user.roles == ("care-coordinator",)
    assert on_database(fresh_db_url, lambda db: users.authenticate(db, "cc1", "wrong-password")) is None
    out = _run(fresh_db_url, "users", "list").stdout
    assert "cc1\tPractitioner/1\tcare-coordinator\tCasey Coordinator" in out and "s3cret" not in out
    # duplicate user, bad fhirUser, short password: refused with a message
    assert _run(fresh_db_url, "users", "add", "--username", "cc1", "--password-stdin",
                stdin="another-password\n").returncode == 2
    r = _run(fresh_db_url, "users", "add", "--username", "x", "--fhir-user", "Observation/1", "--password-stdin",
             stdin="long-enough-pw\n")
    assert r.returncode == 2 and "fhirUser" in r.stderr
    assert _run(fresh_db_url, "users", "add", "--username", "y", "--password-stdin", stdin="short\n").returncode == 2


def test_launch(fresh_db_url):
    r = _run(fresh_db_url, "launch", "--patient", "kid-1", "--user", "Practitioner/1", "--encounter", "e-1",
             "--app-url", "https://app.example.org/launch", "--base-url", "https://ehr.example.org/fhir")
    assert r.returncode == 0, r.stderr
    value = r.stdout.split("launch: ")[1].split()[0]
    url = r.stdout.strip().splitlines()[-1]
    assert url.startswith("https://app.example.org/launch?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q == {"iss": "https://ehr.example.org/fhir", "launch": value}
    launch = on_database(fresh_db_url, lambda db: launches.resolve(db, value))
    assert (launch.patient, launch.encounter, launch.fhir_user) == ("kid-1", "e-1", "Practitioner/1")
    assert on_database(fresh_db_url, lambda db: launches.resolve(db, value + "x")) is None
    assert _run(fresh_db_url, "launch", "--patient", "bad id!").returncode == 2


def test_keys_rotate(fresh_db_url):
    r = _run(fresh_db_url, "keys", "rotate")
    assert r.returncode == 0, r.stderr
    listed = _run(fresh_db_url, "keys", "list").stdout.strip().splitlines()
    assert len(listed) == 2  # the first-start key and the new one
    new_kid = r.stdout.split("new signing key: ")[1].split()[0]
    assert listed[0].split("\t") == [new_kid, "RS256", "active"] and listed[1].endswith("\tinactive")
    jwks = on_database(fresh_db_url, keys.jwks)
    assert {k["kid"] for k in jwks["keys"]} == {line.split("\t")[0] for line in listed}
    assert all("d" not in k for k in jwks["keys"])
    assert str(on_database(fresh_db_url, keys.active_key).kid) == new_kid


def test_serve_demo_creates_demo_logins(fresh_db_url):
    import time

    import httpx

    from fhir_server.demo.auth import DEMO_CLIENT_ID, DEMO_PASSWORD
    from tests.conftest import _free_port

    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--database-url", fresh_db_url, "--demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "CARES_FHIR_POOL_SIZE": "2"})  # few PostgreSQL connections
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None and time.time() < deadline, "server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/fhir/.well-known/smart-configuration", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # authorization is on: no token, no data
        assert httpx.get(f"http://127.0.0.1:{port}/fhir/Patient", timeout=10).status_code == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Authorization is OFF" not in out
    for name in ("coordinator", "senior", "pcp", "ccm", "parent"):
        assert f"demo login: user '{name}'" in out
    listed = {line.split("\t")[0]: line.split("\t")[1] for line in _run(fresh_db_url, "users", "list").stdout.split(
        "\n") if line}
    assert listed["pcp"] == "Practitioner/pcp-marisol-vega" and listed["parent"].startswith("RelatedPerson/")
    assert on_database(fresh_db_url, lambda db: users.authenticate(db, "ccm", DEMO_PASSWORD)) is not None
    assert on_database(fresh_db_url, lambda db: clients.get(db, DEMO_CLIENT_ID)).auth_method == "none"
