"""Interop proof (issue 7): the unmodified JavaScript SMART client (npm ``fhirclient`` 2.x, its browser bundle) in
headless Debian chromium completes an EHR launch and reads a CarePlan.

The app (``app/launch.html`` → ``app/index.html``) is served from its own origin by ``static_app`` on
127.0.0.1; Playwright's Python package drives ``/usr/bin/chromium`` (never a browser of Playwright's own) and
plays the person: fills the login form and approves. The EHR's part is ``cares-fhir launch --app-url``, whose
printed URL (``launch.html?iss=…&launch=…``) the browser opens. Every request the page makes to anything but
127.0.0.1 is aborted. Without chromium or ``node_modules`` the test is skipped outside CI and fails in CI
(``make test`` installs both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tests.interop.conftest import SmartWorld
from tests.interop.static_app import BUNDLE, StaticApp

CHROMIUM = Path("/usr/bin/chromium")
SCOPE = "launch openid fhirUser patient/*.rs"  # what app/launch.html asks for
STEP_MS = 20_000


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must have it: `make test` installs it)")
    pytest.skip(f"{what}: run `make test` (or `apt-get install -y chromium` / `npm ci --prefix tests/interop`)")


@pytest.fixture
def browser_installed() -> None:
    """Chromium and the npm package are there (checked before any server or data is set up)."""
    if not CHROMIUM.exists():
        _missing("Debian chromium is not installed at /usr/bin/chromium")
    if not BUNDLE.exists():
        _missing("the npm fhirclient package is not installed in tests/interop/node_modules")


@pytest.fixture
def chromium(browser_installed: None, smart_world: SmartWorld) -> Iterator[Any]:
    """Headless Debian chromium (started after the test data: Playwright's sync API holds the thread's loop)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def static_app() -> Iterator[StaticApp]:
    app = StaticApp().start()
    yield app
    app.stop()


def _ehr_launch_url(w: SmartWorld, app_url: str) -> str:
    """The EHR's part, by ``cares-fhir launch --app-url``: the URL it prints for the app (``?iss=…&launch=…``)."""
    out = subprocess.run(
        [sys.executable, "-m", "fhir_server", "launch", "--patient", w.patient_id,
         "--user", f"Practitioner/{w.practitioner_id}", "--app-url", app_url,
         "--database-url", w.server.settings.database_url, "--base-url", w.server.base],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    urls = [line for line in out.stdout.split() if line.startswith(app_url + "?")]
    assert urls, out.stdout
    return urls[0]


def test_js_fhirclient_ehr_launch_in_chromium_reads_careplan(browser_installed: None, smart_world: SmartWorld,
                                                            static_app: StaticApp, chromium: Any) -> None:
    w = smart_world
    client_id = w.register_client(f"{static_app.origin}/index.html", SCOPE)
    static_app.config = {"clientId": client_id, "carePlanId": w.careplan_id}
    launch_url = _ehr_launch_url(w, f"{static_app.origin}/launch.html")

    context = chromium.new_context()
    log: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(STEP_MS)

        def local_only(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                log.append(f"blocked {route.request.url}")
                route.abort()

        page.route("**/*", local_only)
        page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
        page.on("requestfailed", lambda r: log.append(f"failed {r.method} {urlsplit(r.url).path}: {r.failure}"))
        page.on("response", lambda r: log.append(f"{r.status} {r.request.method} {urlsplit(r.url).path}"))

        page.goto(launch_url)
        # the login page of the authorization server (or the app's error, when discovery failed)
        page.wait_for_selector("input[name=password], #error:not(:empty)")
        assert not page.is_visible("#error:not(:empty)"), _report(page, log, "the app failed before the login page")
        page.fill("input[name=username]", w.username)
        page.fill("input[name=password]", w.password)
        page.click("button[type=submit]")
        approve = page.wait_for_selector('button[name=decision][value=approve]')
        assert "patient/*.rs" in page.content(), "the authorization page does not show the requested scopes"
        approve.click()

        page.wait_for_url(f"{static_app.origin}/index.html*")
        page.wait_for_selector("#result:not(:empty), #error:not(:empty)")
        result = page.text_content("#result") or ""
        assert result, _report(page, log, "the app got no CarePlan")
        got = json.loads(result)
    except PlaywrightTimeout as e:  # a step that never came: say where the browser was and what it saw
        raise AssertionError(_report(page, log, f"timed out: {e.message.splitlines()[0]}")) from e
    finally:
        context.close()

    assert got["resourceType"] == "CarePlan" and got["id"] == w.careplan_id
    assert got["subject"] == f"Patient/{w.patient_id}" and got["title"] == w.careplan_title
    assert got["patient"] == w.patient_id  # launch context → token response → client.patient.id
    assert got["fhirUser"] == f"Practitioner/{w.practitioner_id}"  # from the id_token
    assert "patient/*.rs" in got["scope"].split() or "patient/CarePlan.rs" in got["scope"].split()


def _report(page: Any, log: list[str], what: str) -> str:
    error = page.text_content("#error") if page.query_selector("#error") else ""
    return f"{what} at {urlsplit(page.url).path}: {error!r}\n" + "\n".join(log[-40:])
