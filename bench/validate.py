"""Validation cost (issue 5, point 8): validator time per resource, and profile-validated creates/s against
unvalidated creates/s in the same run. Target: a validated create costs at most 2x an unvalidated one.

    .venv/bin/python bench/validate.py [--sqlite] [--duration 8] [--concurrency 4]

1. In process (best of 5 x N calls after a warm-up): ``validate()`` of a ~3 KB care-plan CarePlan against
   the base spec, and against base + one profile (the validator tests' CarePlan profile, authored as a
   differential); the structural check alone; a large Synthea transaction Bundle (hundreds of entries)
   against the base spec.
2. Over HTTP: our server (PostgreSQL by default, ``--sqlite``), the profile stored as a StructureDefinition,
   then timed phases of ``POST CarePlan`` without ``meta.profile`` (structural check only) and with it (full
   validation on write), alternating twice; creates/s, latency, server CPU ms per create, and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

REPO = bl.REPO
PROFILE = REPO / "tests" / "validation" / "data" / "profiles" / "cares-careplan.json"
BASES = REPO / "tests" / "validation" / "data" / "broken" / "bases.json"
SYNTHEA = REPO.parent / "shared" / "fhir-examples" / "synthea"


def careplan() -> dict[str, Any]:
    """The validator tests' valid CarePlan, grown to ~3 KB (two more activities)."""
    cp = copy.deepcopy(json.loads(BASES.read_text(encoding="utf-8"))["careplan"])
    cp["activity"] += copy.deepcopy(cp["activity"][:2])
    return cp


def best_ms(fn: Any, n: int) -> float:
    fn()  # warm-up: snapshots, element trees, compiled invariants
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1000


def in_process() -> dict[str, Any]:
    from fhir_server.validation.registry import default_registry
    from fhir_server.validation.structure import validate_structure
    from fhir_server.validation.validator import validate

    sd = json.loads(PROFILE.read_text(encoding="utf-8"))
    default_registry().add(sd)
    cp = careplan()
    synthea = max(SYNTHEA.glob("*.json"), key=lambda p: p.stat().st_size)
    bundle = json.loads(synthea.read_text(encoding="utf-8"))
    out = {
        "careplan_bytes": len(json.dumps(cp)),
        "structure_only_ms": best_ms(lambda: validate_structure(cp), 200),
        "careplan_base_ms": best_ms(lambda: validate(cp), 100),
        "careplan_base_and_profile_ms": best_ms(lambda: validate(cp, profiles=[sd["url"]]), 100),
        "bundle_file": synthea.name, "bundle_entries": len(bundle.get("entry", [])),
        "bundle_bytes": synthea.stat().st_size,
        "bundle_base_ms": best_ms(lambda: validate(bundle), 1),
    }
    out["bundle_base_ms_per_entry"] = out["bundle_base_ms"] / max(1, out["bundle_entries"])
    issues = [i for i in validate(cp, profiles=[sd["url"]]) if i.severity == "error"]
    if issues:
        raise SystemExit(f"the benchmark CarePlan does not conform: {issues[:3]}")
    return out


def over_http(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    sd = json.loads(PROFILE.read_text(encoding="utf-8"))
    base, _url, proc = bl.server_from_args(args, "validate", stamp)
    try:
        h = bl.Http(base)
        status, _ = h.req("PUT", f"StructureDefinition/{sd['id']}", sd)[:2]
        if status not in (200, 201):
            raise SystemExit(f"storing the profile failed: HTTP {status}")
        plain = careplan()
        plain.pop("meta", None)
        plain.pop("id", None)
        profiled = {**plain, "meta": {"profile": [sd["url"]]}}
        h.close()

        def create(body: dict[str, Any]) -> Any:
            def op(http: bl.Http, _i: int) -> bool:
                return http.req("POST", "CarePlan", body)[0] == 201
            return op

        rounds: dict[str, list[dict[str, Any]]] = {"unvalidated": [], "validated": []}
        pid = proc.pid if proc is not None else None
        for r in range(2):
            for name, body in (("unvalidated", plain), ("validated", profiled)):
                res = bl.timed_loop(base, create(body), args.duration, args.concurrency, warmup=1.0, server_pid=pid)
                if pid:
                    res["server_ms_per_create"] = round(res["server_cpu_s"] * 1000 / max(1, res["n"]), 3)
                bl.eprint(f"   round {r + 1} {name:<12} {res['rps']:>8.1f}/s  p50 {res['p50_ms']} ms"
                          f"  errors {res['errors']}  server ms/create {res.get('server_ms_per_create')}")
                rounds[name].append(res)
        return rounds
    finally:
        if proc is not None:
            bl.stop_process(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bl.add_server_args(ap, default_db="cares_validate_bench", sqlite_name="validate.sqlite3", port=8306)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    local = in_process()
    print(f"CarePlan {local['careplan_bytes']} B: structure only {local['structure_only_ms']:.2f} ms, "
          f"base {local['careplan_base_ms']:.2f} ms, base + profile {local['careplan_base_and_profile_ms']:.2f} ms")
    print(f"Bundle {local['bundle_file']} ({local['bundle_entries']} entries, {local['bundle_bytes'] // 1024} KiB): "
          f"base {local['bundle_base_ms']:.0f} ms ({local['bundle_base_ms_per_entry']:.2f} ms per entry)")
    rounds = over_http(args, stamp)
    best = {k: max(r["rps"] for r in v) for k, v in rounds.items()}
    cost_ratio = best["unvalidated"] / best["validated"]
    print(f"\ncreates/s (best of 2): unvalidated {best['unvalidated']:.0f}, validated {best['validated']:.0f};"
          f" a validated create costs {cost_ratio:.2f}x an unvalidated one (target <= 2): "
          f"{'MET' if cost_ratio <= 2 else 'NOT MET'}")
    path = bl.out_dir() / f"validate-{stamp}.json"
    path.write_text(json.dumps({"machine": bl.machine_info(), "settings": vars(args) | {"_default_db": None},
                                "in_process": local, "http": rounds, "cost_ratio": cost_ratio}, indent=1,
                               default=str))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
