"""Renders the guide's pages (HTML, jinja2 with autoescape) from :class:`~fhir_server.guide.sources.Sources`.

Page paths are relative to the guide's root (``/ig/`` when served): ``index.html``,
``StructureDefinition/<id>.html``, ``ValueSet/<id>.html``, ``CodeSystem/<id>.html``, ``SearchParameter/<id>.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from fhir_server.guide import trace
from fhir_server.guide.citations import sections
from fhir_server.guide.sources import Sources

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["compact"] = trace.compact
    return env


class Links:
    """Where a canonical URL or a resource is shown: its page in the guide when there is one, else the URL itself."""

    def __init__(self, src: Sources, root: str) -> None:
        self.root = root
        self.pages: dict[str, str] = {}
        for rtype, items in (("StructureDefinition", src.structure_definitions), ("ValueSet", src.value_sets),
                             ("CodeSystem", src.code_systems), ("SearchParameter", src.search_parameters)):
            for r in items:
                if r.get("url"):
                    self.pages[r["url"]] = f"{root}{rtype}/{r['id']}.html"

    def __call__(self, canonical: str) -> str:
        url = (canonical or "").split("|", 1)[0]
        return self.pages.get(url, url)

    def known(self, canonical: str) -> bool:
        return (canonical or "").split("|", 1)[0] in self.pages


def _element_view(el: dict[str, Any]) -> dict[str, Any]:
    types = []
    for t in el.get("type", []):
        types.append({"code": t.get("code", ""), "profiles": t.get("profile", []),
                      "targets": t.get("targetProfile", [])})
    return {"id": trace.element_label(el), "path": el.get("path", ""), "slice": el.get("sliceName", ""),
            "card": trace.cardinality(el), "types": types, "fixed": trace.fixed_or_pattern(el),
            "binding": el.get("binding"), "must_support": el.get("mustSupport", False),
            "short": el.get("short", ""), "requirements": el.get("requirements", ""),
            "sections": sections(el.get("requirements", "")), "constraints": el.get("constraint", [])}


def _kind(sd: dict[str, Any]) -> str:
    return "extension" if sd.get("type") == "Extension" else "profile"


def render_site(src: Sources, root: str = "/ig/") -> dict[str, str]:
    """Every page of the guide, by path relative to ``root``."""
    env = environment()
    links = Links(src, root)
    rows = trace.build_rows(src)
    cov = trace.coverage(src, rows)
    common = {"root": root, "link": links}
    pages: dict[str, str] = {}
    pages["index.html"] = env.get_template("index.html").render(
        **common, title="CARES FHIR implementation guide",
        profiles=[sd for sd in src.structure_definitions if _kind(sd) == "profile"],
        extensions=[sd for sd in src.structure_definitions if _kind(sd) == "extension"],
        value_sets=src.value_sets, code_systems=src.code_systems, search_parameters=src.search_parameters,
        coverage=cov, rows=rows, unmet=trace.unmet(cov))
    sd_page = env.get_template("structuredefinition.html")
    for sd in src.structure_definitions:
        pages[f"StructureDefinition/{sd['id']}.html"] = sd_page.render(
            **common, title=sd.get("title") or sd.get("name") or sd["id"], sd=sd, kind=_kind(sd),
            elements=[_element_view(el) for el in sd.get("differential", {}).get("element", [])],
            rows=[r for r in rows if r.profile_url and r.profile_url == sd.get("url")])
    term = env.get_template("terminology.html")
    for rtype, items in (("ValueSet", src.value_sets), ("CodeSystem", src.code_systems)):
        for r in items:
            pages[f"{rtype}/{r['id']}.html"] = term.render(
                **common, title=r.get("title") or r.get("name") or r["id"], rtype=rtype, res=r,
                used_by=[sd for sd in src.structure_definitions if _binds(sd, r.get("url", ""))])
    sp = env.get_template("searchparameter.html")
    for r in src.search_parameters:
        pages[f"SearchParameter/{r['id']}.html"] = sp.render(**common, title=r.get("name") or r["id"], res=r)
    return pages


def _binds(sd: dict[str, Any], url: str) -> bool:
    if not url:
        return False
    return any(str(el.get("binding", {}).get("valueSet", "")).split("|", 1)[0] == url
               for el in sd.get("differential", {}).get("element", []))
