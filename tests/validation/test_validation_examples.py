"""Every third-party R4 example, and every resource in the Synthea transaction bundles, is structurally valid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_server.validation import structure
from fhir_server.validation.structure import validate_structure

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-examples"
if not EXAMPLES.exists():  # CI lays shared/ beside the clone
    EXAMPLES = Path(os.environ.get("CARES_FHIR_EXAMPLES", "../shared/fhir-examples")).resolve()

EXAMPLE_FILES = sorted((EXAMPLES / "examples").glob("*.json"))
SYNTHEA_FILES = sorted((EXAMPLES / "synthea").glob("*.json"))


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


@pytest.fixture(params=[True, False], ids=["with-r4b-models", "r4-walk-only"])
def models(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(structure, "USE_R4B_MODELS", request.param)
    return request.param


def test_the_example_sets_are_there() -> None:
    assert len(EXAMPLE_FILES) >= 60
    assert len(SYNTHEA_FILES) >= 4


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_is_valid(path: Path, models: bool) -> None:
    assert validate_structure(_load(path)) == []


@pytest.mark.parametrize("path", SYNTHEA_FILES, ids=lambda p: p.stem.split("_")[0])
def test_every_synthea_entry_is_valid(path: Path, models: bool) -> None:
    bundle = _load(path)
    bad = {}
    for i, entry in enumerate(bundle["entry"]):
        issues = validate_structure(entry["resource"])
        if issues:
            bad[i] = issues
    assert bad == {}
    assert len(bundle["entry"]) > 50


@pytest.mark.parametrize("path", SYNTHEA_FILES, ids=lambda p: p.stem.split("_")[0])
def test_synthea_bundle_as_a_whole_is_valid(path: Path, models: bool) -> None:
    assert validate_structure(_load(path)) == []


def test_an_error_inside_a_bundle_entry_points_into_the_entry() -> None:
    bundle = _load(SYNTHEA_FILES[0])
    bundle["entry"][3]["resource"]["bogus"] = True
    rt = bundle["entry"][3]["resource"]["resourceType"]
    issues = validate_structure(bundle)
    assert [(i.code, i.expression) for i in issues] == [("structure", ("Bundle.entry[3].resource.bogus",))], rt
