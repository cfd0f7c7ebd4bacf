"""What the guide is generated from: the conformance resources, the example manifests and the tests.

* conformance resources: ``profiles/data/ig/*.json`` and ``terminology/data/cares/*.json`` (single resources or
  collection Bundles) — StructureDefinitions, ValueSets, CodeSystems, SearchParameters;
* example manifests: ``profiles/data/examples/*/manifest.json`` — each invalid example (file, profile, rule,
  expression, Appendix M source, and in some folders the test), plus ``otherTests`` where a folder has them;
* tests: ``tests/ig/*.py`` when present (a source checkout; an installed package has none): used only to name the
  test of an invalid example whose manifest does not, and the tests that mention an invariant key.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("cares_fhir.guide")

ROOT = Path(__file__).resolve().parents[2]
RESOURCE_DIRS = (ROOT / "profiles" / "data" / "ig", ROOT / "terminology" / "data" / "cares")
EXAMPLES_DIR = ROOT / "profiles" / "data" / "examples"
TESTS_DIR = ROOT / "tests" / "ig"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.json"


@dataclass(frozen=True)
class Example:
    """One invalid example, or (``file`` empty) another test a manifest lists."""

    folder: str
    file: str
    profile: str
    rule: str
    expression: str
    source: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Requirement:
    id: str
    section: str
    area: str
    summary: str
    terms: tuple[str, ...] = ()
    not_modelled: str = ""


@dataclass(frozen=True)
class Sources:
    structure_definitions: list[dict[str, Any]] = field(default_factory=list)
    value_sets: list[dict[str, Any]] = field(default_factory=list)
    code_systems: list[dict[str, Any]] = field(default_factory=list)
    search_parameters: list[dict[str, Any]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    requirements: list[Requirement] = field(default_factory=list)
    #: test id -> source text, for the tests over HTTP (taking the ``fhir`` fixture; empty without tests/)
    test_sources: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # a file being written by someone else, or broken: leave it out
        log.warning("guide: skipping %s: %s", path, e)
        return None


def load_resources(dirs: tuple[Path, ...] = RESOURCE_DIRS) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in dirs:
        for path in sorted(d.glob("*.json")):
            data = _read_json(path)
            if not isinstance(data, dict):
                continue
            if data.get("resourceType") == "Bundle":
                out += [e["resource"] for e in data.get("entry", []) if isinstance(e.get("resource"), dict)]
            else:
                out.append(data)
    return out


def load_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    data = _read_json(path) or {}
    return [Requirement(id=r["id"], section=r["section"], area=r["area"], summary=r["summary"],
                        terms=tuple(r.get("terms", ())), not_modelled=r.get("not_modelled", ""))
            for r in data.get("requirements", [])]


# -- the tests -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestModule:
    path: str  # tests/ig/test_x.py
    folders: tuple[str, ...]  # the example folders it reads
    functions: dict[str, str]  # test function name -> its source
    http: frozenset[str]  # the test functions taking the ``fhir`` fixture (they exercise a live server)
    #: test functions parametrized over MANIFEST["invalid"]: (name, argument name, the ``ids=`` expression)
    manifest_tests: tuple[tuple[str, str, ast.expr | None], ...]


def _folders(text: str) -> tuple[str, ...]:
    pat = re.compile(r"""["']examples["']\s*/\s*["']([\w.-]+)["']|examples/([\w.-]+)""")
    return tuple(dict.fromkeys(a or b for a, b in pat.findall(text)))


def _is_manifest_invalid(node: ast.expr) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "MANIFEST"
            and isinstance(node.slice, ast.Constant) and node.slice.value == "invalid")


def _manifest_parametrize(fn: ast.FunctionDef) -> tuple[str, ast.expr | None] | None:
    """(argument name, ``ids=`` expression) when ``fn`` is parametrized over ``MANIFEST["invalid"]``."""
    for dec in fn.decorator_list:
        if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == "parametrize"
                and len(dec.args) >= 2 and _is_manifest_invalid(dec.args[1])):
            arg = dec.args[0].value if isinstance(dec.args[0], ast.Constant) else "case"
            return str(arg), next((k.value for k in dec.keywords if k.arg == "ids"), None)
    return None


def parse_test_module(path: Path, rel: str) -> TestModule:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    functions: dict[str, str] = {}
    http: set[str] = set()
    manifest_tests: list[tuple[str, str, ast.expr | None]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            functions[node.name] = ast.get_source_segment(text, node) or ""
            if any(a.arg == "fhir" for a in node.args.args):
                http.add(node.name)
            if found := _manifest_parametrize(node):
                manifest_tests.append((node.name, *found))
    return TestModule(path=rel, folders=_folders(text), functions=functions, http=frozenset(http),
                      manifest_tests=tuple(manifest_tests))


def _case_id(ids: ast.expr | None, argname: str, case: dict[str, Any], index: int) -> str:
    """The pytest id of ``case`` for ``ids=[<expr over c> for c in MANIFEST["invalid"]]`` (subscripts and constant
    slices of the case only); pytest's default id otherwise."""
    default = f"{argname}{index}"
    if not (isinstance(ids, ast.ListComp) and len(ids.generators) == 1
            and isinstance(ids.generators[0].target, ast.Name)):
        return default
    var = ids.generators[0].target.id

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Name) and node.id == var:
            return case
        if isinstance(node, ast.Subscript):
            base = value(node.value)
            s = node.slice
            if isinstance(s, ast.Constant) and isinstance(base, dict):
                return base.get(s.value)
            if isinstance(s, ast.Slice) and isinstance(base, str):
                def bound(b: ast.expr | None) -> int | None:
                    if b is None:
                        return None
                    return ast.literal_eval(b)
                return base[bound(s.lower):bound(s.upper)]
        raise ValueError("unsupported ids expression")

    try:
        out = value(ids.elt)
    except (ValueError, TypeError):
        return default
    return out if isinstance(out, str) else default


def load_test_modules(tests_dir: Path = TESTS_DIR) -> list[TestModule]:
    if not tests_dir.is_dir():
        return []
    out = []
    for path in sorted(tests_dir.glob("test_*.py")):
        try:
            out.append(parse_test_module(path, f"tests/{tests_dir.name}/{path.name}"))
        except (OSError, SyntaxError, ValueError) as e:
            log.warning("guide: skipping %s: %s", path, e)
    return out


def tests_for_example(modules: list[TestModule], folder: str, case: dict[str, Any], index: int) -> tuple[str, ...]:
    """The tests that run an invalid example whose manifest names none: the manifest-parametrized tests of the module
    reading that folder, and every test whose source names the file."""
    out: list[str] = []
    for m in modules:
        if folder in m.folders:
            out += [f"{m.path}::{name}[{_case_id(ids, arg, case, index)}]" for name, arg, ids in m.manifest_tests]
        out += [f"{m.path}::{name}" for name, src in m.functions.items() if case["file"] in src]
    return tuple(dict.fromkeys(out))


# -- the manifests --------------------------------------------------------------------------------------------------

def load_examples(examples_dir: Path = EXAMPLES_DIR, modules: list[TestModule] | None = None) -> list[Example]:
    modules = modules or []
    out: list[Example] = []
    for path in sorted(examples_dir.glob("*/manifest.json")):
        folder = path.parent.name
        manifest = _read_json(path)
        if not isinstance(manifest, dict):
            continue
        for i, case in enumerate(manifest.get("invalid", [])):
            if not isinstance(case, dict) or "file" not in case:
                continue
            tests = (case["test"],) if case.get("test") else tests_for_example(modules, folder, case, i)
            out.append(Example(folder=folder, file=case["file"], profile=case.get("profile", ""),
                               rule=case.get("rule", ""), expression=case.get("expression", ""),
                               source=case.get("source", ""), tests=tests))
        for case in manifest.get("otherTests", []):
            if isinstance(case, dict) and case.get("test"):
                out.append(Example(folder=folder, file="", profile=case.get("profile", ""), rule=case.get("rule", ""),
                                   expression=case.get("expression", ""), source=case.get("source", ""),
                                   tests=(case["test"],)))
    return out


def load(resource_dirs: tuple[Path, ...] = RESOURCE_DIRS, examples_dir: Path = EXAMPLES_DIR,
         tests_dir: Path = TESTS_DIR, requirements: Path = REQUIREMENTS) -> Sources:
    resources = load_resources(resource_dirs)
    modules = load_test_modules(tests_dir)

    def of(rtype: str) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for r in resources:
            if r.get("resourceType") == rtype and r.get("id"):
                seen.setdefault(r["id"], r)
        return sorted(seen.values(), key=lambda r: r["id"])

    return Sources(structure_definitions=of("StructureDefinition"), value_sets=of("ValueSet"),
                   code_systems=of("CodeSystem"), search_parameters=of("SearchParameter"),
                   examples=load_examples(examples_dir, modules), requirements=load_requirements(requirements),
                   test_sources={f"{m.path}::{n}": src for m in modules for n, src in m.functions.items()
                                 if n in m.http})
