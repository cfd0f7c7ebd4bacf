"""Drives the authorization server's HTML pages the way a person in a browser would, with httpx.

From an authorize URL it follows redirects and answers each page by its form: the login page (fields
``username`` / ``password``), the authorization page (``<button name="decision" value="approve">``) and the
patient picker (``<button name="patient" value="{id}">``), sending every hidden field the form carries (the
CSRF token among them) and the cookies the server set. It stops at the first redirect to the app's
``redirect_uri`` and returns that URL (``?code=…&state=…``) without requesting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden and other named inputs with their values
    inputs: set[str] = field(default_factory=set)  # names of every input
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=(a.get("method") or "get").upper()))
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            self.forms[-1].inputs.add(a["name"])
            if a.get("type", "text").lower() in ("submit", "image"):
                self.forms[-1].buttons.append((a["name"], a.get("value", "")))
            elif a.get("type", "text").lower() not in ("checkbox", "radio") or "checked" in a:
                self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            self.forms[-1].buttons.append((a.get("name", ""), a.get("value", "")))


def parse_forms(html: str) -> list[Form]:
    p = _FormParser()
    p.feed(html)
    return p.forms


class PageError(AssertionError):
    """The server answered something no person could go on from (the text says what)."""


def _answer(form: Form, *, username: str, password: str, patient: str | None, decision: str) -> dict[str, str]:
    data = dict(form.fields)
    if "password" in form.inputs:
        data["username"], data["password"] = username, password
        named = [b for b in form.buttons if b[0]]
        if named:
            data[named[0][0]] = named[0][1]
        return data
    decisions = [v for n, v in form.buttons if n == "decision"]
    if decisions:
        if decision not in decisions:
            raise PageError(f"the authorization page offers {decisions}, not {decision!r}")
        data["decision"] = decision
        return data
    patients = [v for n, v in form.buttons if n == "patient"]
    if patients:
        if patient is not None and patient not in patients:
            raise PageError(f"the patient picker does not offer Patient/{patient}")
        data["patient"] = patient or patients[0]
        return data
    raise PageError(f"a form that is neither login, authorization nor patient picker: {form}")


def _pick(forms: list[Form], decision: str) -> Form:
    """The form a person would use: login first, else the one with the wanted decision, else the picker."""
    for wanted in (lambda f: "password" in f.inputs, lambda f: ("decision", decision) in f.buttons,
                   lambda f: any(n == "patient" for n, _ in f.buttons)):
        found = [f for f in forms if wanted(f)]
        if found:
            return found[0]
    return forms[0]


def authorize_in_browser(http: httpx.Client, authorize_url: str, redirect_uri: str, *, username: str,
                         password: str, patient: str | None = None, decision: str = "approve",
                         max_steps: int = 12) -> str:
    """Follow ``authorize_url`` through the server's pages; the URL the server finally sends the browser to.

    ``http`` must not follow redirects itself (each hop is checked against ``redirect_uri``) and keeps cookies.
    """
    resp = http.get(authorize_url)
    for _ in range(max_steps):
        if resp.is_redirect:
            target = urljoin(str(resp.url), resp.headers["location"])
            if target.split("?", 1)[0] == redirect_uri:
                return target
            resp = http.get(target)
            continue
        if resp.status_code != 200 or "html" not in resp.headers.get("content-type", ""):
            raise PageError(f"{resp.request.method} {resp.url.path} answered {resp.status_code}: {resp.text[:500]}")
        forms = [f for f in parse_forms(resp.text) if f.buttons or "password" in f.inputs]
        if not forms:
            raise PageError(f"no form on the page at {resp.url.path}: {resp.text[:500]}")
        form = _pick(forms, decision)
        data = _answer(form, username=username, password=password, patient=patient, decision=decision)
        url = urljoin(str(resp.url), form.action or str(resp.url))
        resp = http.post(url, data=data) if form.method == "POST" else http.get(url, params=data)
    raise PageError(f"no redirect to {redirect_uri} after {max_steps} pages")
