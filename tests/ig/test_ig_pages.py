"""The CARES guide as a document (issue 6, point 12): the HTML pages under ``/ig/``, generated from the profiles, the
example manifests and the tests (``fhir_server/guide``), over HTTP on a live server.

Done when (issue 6): the traceability table has no Appendix M requirement about the ICP, care team, referrals,
follow-up, enrollment or removal without an element and a test, or an explicit "not modelled, because …" —
:func:`test_every_requirement_has_a_tested_element_or_a_reason` fails when one is missing.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import json
import re
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from fhir_server.guide import citations, trace
from fhir_server.guide.render import render_site
from fhir_server.guide.sources import Example, Requirement, Sources, load

ROOT = Path(__file__).resolve().parents[2]
IG = ROOT / "profiles" / "data" / "ig"
TX = ROOT / "terminology" / "data" / "cares"
EXAMPLES = ROOT / "profiles" / "data" / "examples"
REQUIREMENTS = json.loads((ROOT / "fhir_server" / "guide" / "requirements.json").read_text(encoding="utf-8"))


def _resources(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [e["resource"] for e in data["entry"]] if data["resourceType"] == "Bundle" else [data]


def _esc(text: str) -> str:
    """``text`` as the pages show it (jinja2's autoescape)."""
    return str(escape(text))


def _conformance() -> list[dict]:
    return [r for d in (IG, TX) for p in sorted(d.glob("*.json")) for r in _resources(p)
            if r["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter")]


def _invalid_examples() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(EXAMPLES.glob("*/manifest.json")):
        out += [(path.parent.name, c) for c in json.loads(path.read_text(encoding="utf-8"))["invalid"]]
    return out


SDS = sorted((p for p in IG.glob("*.json") if _resources(p)[0]["resourceType"] == "StructureDefinition"),
             key=lambda p: p.name)


@pytest.fixture(scope="module")
def web(sqlite_server) -> httpx.Client:
    with httpx.Client(base_url=sqlite_server.base[:-len("/fhir")], timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def index(web) -> str:
    r = web.get("/ig/")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    end = page.find("<h2", start)
    return page[start:end if end >= 0 else None]


def _rows(table_html: str, cls: str) -> list[str]:
    return re.findall(rf'<tr[^>]*class="{cls}[^"]*"[^>]*>.*?</tr>', table_html, flags=re.S)


def _tests_in(fragment: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<code class="test">(.*?)</code>', fragment, flags=re.S)]


def _test_functions(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


# -- the pages over HTTP ---------------------------------------------------------------------------------------------

def test_index_lists_every_conformance_resource_with_its_url(web, index):
    resources = _conformance()
    assert len(resources) > 20
    for r in resources:
        assert _esc(r["url"]) in index, r["url"]
        if r["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter"):
            href = f'/ig/{r["resourceType"]}/{r["id"]}.html'
            assert f'href="{href}"' in index, href
            page = web.get(href)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), href
            assert _esc(r["url"]) in page.text


def test_ig_without_slash_redirects_and_index_html_is_the_index(web, index):
    r = web.get("/ig", follow_redirects=False)
    assert r.status_code in (301, 302, 307, 308) and r.headers["location"].endswith("/ig/")
    assert web.get("/ig/index.html").text == index


@pytest.mark.parametrize("path", SDS, ids=[p.stem for p in SDS])
def test_profile_page_shows_elements_bindings_invariants_and_citations(web, path):
    sd = _resources(path)[0]
    r = web.get(f"/ig/StructureDefinition/{sd['id']}.html")
    assert r.status_code == 200, r.text
    page = r.text
    assert _esc(sd["baseDefinition"]) in page  # the base definition link
    for el in sd["differential"]["element"]:
        assert f'id="el-{_esc(el["id"])}"' in page, el["id"]
        if el.get("requirements"):
            assert _esc(el["requirements"]) in page, el["id"]  # the Appendix M citation of the row
        if el.get("binding", {}).get("valueSet"):
            assert _esc(el["binding"]["valueSet"]) in page and el["binding"]["strength"] in page
        for c in el.get("constraint", []):
            assert f'<code class="key">{_esc(c["key"])}</code> ({c["severity"]})' in page, c["key"]
            assert _esc(c["human"]) in page, c["key"]


def test_terminology_pages_show_the_concepts(web):
    for path in sorted(TX.glob("*.json")):
        for res in _resources(path):
            if res["resourceType"] != "CodeSystem":
                continue
            page = web.get(f"/ig/CodeSystem/{res['id']}.html").text
            for c in res.get("concept", []):
                assert f"<code>{_esc(c['code'])}</code>" in page, (res["id"], c["code"])


def test_traceability_has_a_row_for_every_invalid_example_naming_its_test(index):
    rows = _rows(_section(index, "traceability"), "trace")
    cases = _invalid_examples()
    assert len(cases) > 50
    for folder, case in cases:
        mine = [r for r in rows if f'<code class="example">{_esc(case["file"])}</code>' in r]
        assert mine, f"{folder}/{case['file']}: no traceability row"
        tests = {t for r in mine for t in _tests_in(r)}
        if case.get("test"):
            assert case["test"] in tests, (case["file"], tests)
        else:  # found in tests/ig: a test of that module parametrized with this example, or one naming the file
            assert any(_runs(t, case["file"]) for t in tests), f"{folder}/{case['file']}: no test runs it: {tests}"


def _runs(test: str, file: str) -> bool:
    """``test`` (path::function[param]) exists and runs the example ``file``: its parameter id is made from the file
    name, or (not parametrized) its module names the file."""
    path, _, name = test.partition("::")
    func, _, param = name.partition("[")
    if func not in _test_functions(path):
        return False
    if param:
        return file[len("invalid-"):-len(".json")] in param
    return file in (ROOT / path).read_text(encoding="utf-8")


def test_every_requirement_has_a_tested_element_or_a_reason(index):
    """The Done-when check: each Appendix M requirement (requirements.json) has an element or rule with a test, or an
    explicit "not modelled, because …"."""
    unmet = trace.unmet(trace.coverage(load()))
    assert not unmet, [(c.requirement.id, c.status) for c in unmet]
    rows = {re.search(r'id="req-([^"]+)"', r)[1]: r for r in _rows(_section(index, "requirements"), "requirement")}
    areas = {r["area"] for r in REQUIREMENTS["requirements"]}
    assert {"ICP", "care team", "referrals", "follow-up", "enrollment", "removal"} <= areas
    for req in REQUIREMENTS["requirements"]:
        row = rows.get(_esc(req["id"]))
        assert row, f"requirement {req['id']} has no row"
        tested = '<code class="element">' in row and _tests_in(row)
        reason = "ot modelled, because " in row
        assert tested or reason, f"Appendix M §{req['section']} ({req['id']}): no element with a test, no reason"
        if req.get("not_modelled"):
            assert req["not_modelled"].startswith("because "), req["id"]


def test_every_test_the_guide_names_exists(index):
    for t in set(_tests_in(index)):
        path, _, name = t.partition("::")
        assert re.fullmatch(r"tests/ig/test_\w+\.py", path) and (ROOT / path).is_file(), t
        assert name.partition("[")[0] in _test_functions(path), t


@pytest.mark.parametrize("path", ["nope.html", "StructureDefinition/nope.html", "ValueSet/", "index.htm",
                                  "StructureDefinition/cares-icp.json",
                                  "StructureDefinition/%2e%2e/index.html"])
def test_unknown_page_is_404(web, path):
    r = web.get(f"/ig/{path}")
    assert r.status_code == 404, (path, r.status_code)
    assert r.headers["content-type"].startswith("text/html")


# -- the generator directly ------------------------------------------------------------------------------------------

EVIL = "<script>alert('x')</script>"


def test_html_is_escaped():
    sd = {"resourceType": "StructureDefinition", "id": "evil", "url": "http://example.org/StructureDefinition/evil",
          "name": "Evil", "title": f"Evil {EVIL}", "type": "Patient", "description": f"A description {EVIL}",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
          "differential": {"element": [
              {"id": "Patient", "path": "Patient", "requirements": f"Appendix M §VIII {EVIL}",
               "constraint": [{"key": "evil-1", "severity": "error", "human": f"Appendix M §VIII {EVIL}",
                               "expression": "name.exists() and '<x>' != ''"}]},
              {"id": "Patient.name", "path": "Patient.name", "min": 1, "short": EVIL,
               "requirements": "Appendix M §VIII", "patternHumanName": {"text": EVIL}}]}}
    vs = {"resourceType": "ValueSet", "id": "evil", "url": "http://example.org/ValueSet/evil", "description": EVIL,
          "compose": {"include": [{"system": "http://example.org/cs", "concept": [{"code": EVIL}]}]}}
    cs = {"resourceType": "CodeSystem", "id": "evil", "url": "http://example.org/CodeSystem/evil", "description": EVIL,
          "concept": [{"code": "x", "display": EVIL, "concept": [{"code": "y", "definition": EVIL}]}]}
    src = Sources(structure_definitions=[sd], value_sets=[vs], code_systems=[cs],
                  examples=[Example("f", EVIL, sd["url"], "evil-1", "Patient", "Appendix M §VIII", (EVIL,))],
                  requirements=[Requirement(id="VIII", section="VIII", area="enrollment", summary=EVIL,
                                            not_modelled=f"because {EVIL}")])
    pages = render_site(src)
    assert set(pages) == {"index.html", "StructureDefinition/evil.html", "ValueSet/evil.html", "CodeSystem/evil.html"}
    for name, page in pages.items():
        assert "<script>" not in page, name
        assert "&lt;script&gt;" in page, name
    assert "&lt;x&gt;" in pages["StructureDefinition/evil.html"]  # the invariant's expression too
    assert pages["CodeSystem/evil.html"].count("&lt;script&gt;") >= 3  # nested concepts are shown


def test_a_requirement_without_tested_element_or_reason_is_reported():
    """The Done-when check is real: a requirement no tested row cites, without a reason, is unmet and shown so."""
    src = load()
    orphan = Requirement(id="XII.Z", section="XII.Z", area="ICP", summary="A section no profile cites")
    excused = Requirement(id="XII.Y", section="XII.Y", area="ICP", summary="Another", not_modelled="because x")
    src = dataclasses.replace(src, requirements=[*src.requirements, orphan, excused])
    cov = trace.coverage(src)
    assert [c.requirement.id for c in trace.unmet(cov)] == ["XII.Z"]
    page = render_site(src)["index.html"]
    row = next(r for r in _rows(_section(page, "requirements"), "requirement") if 'id="req-XII.Z"' in r)
    assert "status-missing" in row and "No element with a test, and no reason" in row
    row = next(r for r in _rows(_section(page, "requirements"), "requirement") if 'id="req-XII.Y"' in r)
    assert "Not modelled, because x" in row


def test_cli_writes_the_static_pages(tmp_path):
    from fhir_server.cli import main

    assert main(["guide", "--out", str(tmp_path), "--root", "/docs/ig"]) == 0
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'href="/docs/ig/StructureDefinition/cares-icp.html"' in index
    assert (tmp_path / "StructureDefinition" / "cares-icp.html").is_file()
    assert {p.stem for p in (tmp_path / "StructureDefinition").glob("*.html")} == {_resources(p)[0]["id"] for p in SDS}


def test_citation_parsing():
    assert citations.sections("Appendix M §VI.A.1; §VI.A.1.b") == ["VI.A.1", "VI.A.1.b"]
    assert citations.sections("§VI.A.1.c.ii–iii") == ["VI.A.1.c.ii", "VI.A.1.c.iii"]
    assert citations.sections("§VI.A.1.c.vi(1)–(3)") == ["VI.A.1.c.vi(1)", "VI.A.1.c.vi(2)", "VI.A.1.c.vi(3)"]
    assert citations.sections("§III; §VI.B.1.c–e (x)") == ["III", "VI.B.1.c", "VI.B.1.d", "VI.B.1.e"]
    assert citations.sections("Appendix M §III (cares-ref-1)") == ["III"]
    assert citations.within("VI.A.1.c.v(1)(c)", "VI.A.1.c.v") and citations.within("VI.D.2", "VI.D.2")
    assert not citations.within("VI.A.1.c.vi", "VI.A.1.c.v") and not citations.within("VI.A.1.c", "VI.A.1.c.v")
