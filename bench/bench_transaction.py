#!/usr/bin/env python3
"""Time one 1,000-entry transaction Bundle (target: < 2 s).

    .venv/bin/python bench/bench_transaction.py --base http://127.0.0.1:8080/fhir      # a running server
    .venv/bin/python bench/bench_transaction.py                                         # own server, PostgreSQL
    .venv/bin/python bench/bench_transaction.py --sqlite                                # own server, SQLite file
    .venv/bin/python bench/bench_transaction.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/x

The Bundle holds 100 "visits" of 10 entries: Patient, Encounter, 6 Observations (vitals and labs, with
reference ranges/interpretation), Condition, MedicationRequest; everything but the Patient points at its
Patient (and Encounter) through urn:uuid fullUrls, so the server has to resolve 900 internal references.
Every run posts a new Bundle (fresh identifiers) into the same database; the default is 5 runs after one
unmeasured warmup run, and the report is min/median/max seconds.
When the script starts its own server (no --base) the database is emptied first (not with --keep-db).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

TARGET_S = 2.0
DEFAULT_DB = "cares_bench_tx"

VITALS = [("8867-4", "Heart rate", "/min", 60, 140), ("9279-1", "Respiratory rate", "/min", 14, 40),
          ("8310-5", "Body temperature", "Cel", 36.0, 39.5), ("29463-7", "Body weight", "kg", 3.0, 60.0),
          ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 88, 100)]
LABS = [("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 180, 70, 99),
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 9.0, 16.0, 11.5, 15.5),
        ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.2, 1.2, 0.3, 0.7)]
CONDITIONS = [("13213009", "Congenital heart disease"), ("230745008", "Hydrocephalus"),
              ("69896004", "Rheumatoid arthritis"), ("86044005", "Amyotrophic lateral sclerosis"),
              ("195967001", "Asthma"), ("190905008", "Cystic fibrosis")]
MEDS = [("313782", "Acetaminophen 325 MG Oral Tablet"), ("197361", "Amoxicillin 250 MG Oral Capsule"),
        ("311989", "Nitrofurantoin 50 MG Oral Capsule"), ("745679", "albuterol 0.09 MG/ACTUAT Metered Inhaler")]


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def visit_entries(rng: random.Random, run: str, i: int) -> list[dict[str, Any]]:
    """10 entries for one patient visit (Patient first)."""
    def urn() -> str:
        return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"

    pat, enc = urn(), urn()
    day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    when = f"{day}T{rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}:00-05:00"
    entries: list[dict[str, Any]] = []

    def add(full_url: str, res: dict[str, Any]) -> None:
        entries.append({"fullUrl": full_url, "resource": res,
                        "request": {"method": "POST", "url": res["resourceType"]}})

    add(pat, {
        "resourceType": "Patient",
        "identifier": [{"system": "https://bench.cares.example/mrn", "value": f"{run}-{i}"},
                       {"system": "https://www.mass.gov/masshealth/member-id",
                        "value": f"{rng.randint(10**9, 10**10)}"}],
        "active": True,
        "name": [{"use": "official", "family": rng.choice(["Ramos", "Nguyen", "Okafor", "Silva", "Cohen"]),
                  "given": [rng.choice(["Ana", "Liam", "Maya", "Noah", "Zoe"]), "B."]}],
        "telecom": [{"system": "phone", "value": f"617-555-{rng.randint(1000, 9999)}", "use": "home"}],
        "gender": rng.choice(["male", "female"]),
        "birthDate": f"{rng.randint(2008, 2023)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "address": [{"use": "home", "line": [f"{rng.randint(1, 999)} Beacon St"], "city": "Boston", "state": "MA",
                     "postalCode": "02115", "country": "US"}],
        "contact": [{"relationship": [_coding("http://terminology.hl7.org/CodeSystem/v2-0131", "N",
                                              "Next-of-Kin")],
                     "name": {"family": "Ramos", "given": ["Carla"]},
                     "telecom": [{"system": "phone", "value": "617-555-0100"}]}],
        "communication": [{"language": _coding("urn:ietf:bcp:47", "en-US", "English (United States)"),
                           "preferred": True}],
    })
    add(enc, {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                  "display": "ambulatory"},
        "type": [_coding("http://snomed.info/sct", "185349003", "Encounter for check up")],
        "subject": {"reference": pat},
        "period": {"start": when, "end": when},
        "reasonCode": [_coding("http://snomed.info/sct", "410620009", "Well child visit")],
    })
    for k in range(6):
        if k < 4:
            code, display, unit, lo, hi = VITALS[(i + k) % len(VITALS)]
            value = round(rng.uniform(lo, hi), 1)
            cat, rr, interp = "vital-signs", None, None
        else:
            code, display, unit, lo, hi, nlo, nhi = LABS[(i + k) % len(LABS)]
            value = round(rng.uniform(lo, hi), 2)
            cat = "laboratory"
            rr = [{"low": {"value": nlo, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                   "high": {"value": nhi, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}]
            flag = "H" if value > nhi else "L" if value < nlo else "N"
            interp = [_coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", flag,
                              {"H": "High", "L": "Low", "N": "Normal"}[flag])]
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", cat,
                                 cat.replace("-", " ").title())],
            "code": _coding("http://loinc.org", code, display),
            "subject": {"reference": pat},
            "encounter": {"reference": enc},
            "effectiveDateTime": when,
            "issued": when.replace("-05:00", ".000-05:00"),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        }
        if rr:
            obs["referenceRange"] = rr
            obs["interpretation"] = interp
        add(urn(), obs)
    cond_code, cond_display = rng.choice(CONDITIONS)
    add(urn(), {
        "resourceType": "Condition",
        "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
        "verificationStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed",
                                      "Confirmed"),
        "category": [_coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item",
                             "Problem List Item")],
        "code": _coding("http://snomed.info/sct", cond_code, cond_display),
        "subject": {"reference": pat},
        "encounter": {"reference": enc},
        "onsetDateTime": f"{rng.randint(2010, 2024)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "recordedDate": day,
    })
    med_code, med_display = rng.choice(MEDS)
    add(urn(), {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": _coding("http://www.nlm.nih.gov/research/umls/rxnorm", med_code, med_display),
        "subject": {"reference": pat},
        "encounter": {"reference": enc},
        "authoredOn": when,
        "dosageInstruction": [{"text": "1 tablet by mouth every 6 hours as needed",
                               "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                               "route": _coding("http://snomed.info/sct", "26643006", "Oral route"),
                               "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}],
    })
    return entries


def make_bundle(n_entries: int, run: str, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{run}")
    entries: list[dict[str, Any]] = []
    i = 0
    while len(entries) < n_entries:
        entries.extend(visit_entries(rng, run, i))
        i += 1
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries[:n_entries]}


def post_bundle(base: str, body: bytes, n_entries: int) -> float:
    h = bl.Http(base, timeout=600)
    try:
        t0 = time.perf_counter()
        st, _, data = h.req("POST", "", body)
        dt = time.perf_counter() - t0
    finally:
        h.close()
    if st != 200:
        raise SystemExit(f"transaction failed: HTTP {st}: {data[:1000]!r}")
    resp = json.loads(data)
    got = len(resp.get("entry", []))
    if resp.get("type") != "transaction-response" or got != n_entries:
        raise SystemExit(f"unexpected response: type={resp.get('type')} entries={got}")
    bad = [e["response"]["status"] for e in resp["entry"] if not e["response"]["status"].startswith("201")]
    if bad:
        raise SystemExit(f"{len(bad)} entries not 201: {bad[:5]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    bl.add_server_args(ap, default_db=DEFAULT_DB, sqlite_name="bench_tx.sqlite3", port=8303)
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup-runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    out = bl.out_dir()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base, url, proc = bl.server_from_args(args, "tx", stamp)
    try:
        times = []
        cpu: list[dict[str, float | None]] = []
        size = 0
        for k in range(args.warmup_runs + args.runs):
            body = json.dumps(make_bundle(args.entries, f"{stamp}-{k}", args.seed),
                              separators=(",", ":")).encode()
            size = len(body)
            m0, s0 = bl.machine_busy_s(), bl.proc_cpu_s(proc.pid) if proc else None
            dt = post_bundle(base, body, args.entries)
            m1, s1 = bl.machine_busy_s(), bl.proc_cpu_s(proc.pid) if proc else None
            c = {"server_cpu_s": round(s1 - s0, 2) if proc else None, "machine_busy_cpu_s": round(m1 - m0, 2)}
            warm = k < args.warmup_runs
            bl.eprint(f"  run {k + 1}{' (warmup)' if warm else ''}: {dt:.3f} s  (server CPU {c['server_cpu_s']} s,"
                      f" whole machine {c['machine_busy_cpu_s']} CPU-s)")
            if not warm:
                times.append(dt)
                cpu.append(c)
    finally:
        if proc is not None:
            bl.stop_process(proc)
    med = statistics.median(times)
    res = {"ts": bl.now_utc(), "base": base, "database_url": url, "entries": args.entries,
           "bundle_bytes": size, "runs": args.runs, "times_s": [round(t, 3) for t in times], "cpu": cpu,
           "min_s": round(min(times), 3), "median_s": round(med, 3), "max_s": round(max(times), 3),
           "target_s": TARGET_S, "status": "MET" if med < TARGET_S else "NOT MET", "machine": bl.machine_info()}
    print(f"{args.entries}-entry transaction ({size / 1024:.0f} KiB) on {url or base}: "
          f"min {res['min_s']:.3f} s, median {res['median_s']:.3f} s, max {res['max_s']:.3f} s "
          f"over {args.runs} runs -> {res['status']} (target median < {TARGET_S:g} s)")
    path = out / f"transaction-{stamp}.json"
    path.write_text(json.dumps(res, indent=1))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
