"""Deterministic CARES-like synthetic data for the search benchmark, and loading it into PostgreSQL.

    .venv/bin/python bench/search_data.py generate --children 5000            # → bench/out/search-data/c5000/
    .venv/bin/python bench/search_data.py load --children 5000 --db cares_search_100k

Every child ``i`` gets ~20 resources (Patient; ICP CarePlan + emergency-plan CarePlan; CareTeam;
3 referral ServiceRequests with requester Practitioner and performer Organization; 3 follow-up
Tasks with focus = the referral, owner = a CARES Organization or a care coordinator; 2–3 Goals;
5–7 vital-sign Observations; 1–2 Conditions), plus 200 Organizations and 300 Practitioners shared by
all children (500 resources). Ids are client-assigned (``pat-000042``, ``task-000042-1``…), so every
reference is literal and loading is ``PUT``-idempotent. Child ``i`` is generated from its own seeded
RNG, so the data of N children is a prefix of the data of any larger N (10k ⊂ 100k ⊂ 1M).

Synthetic data, no real people. Every resource carries the HTEST tag, like the demo data.

``load`` drops and re-creates the database ``--db`` (only names starting with ``cares_search``),
runs ``cares-fhir load`` on the files (one process per group of files, ≤ ~100k resources each, to
bound the loader's memory; each process ANALYZEs at its end) and writes timings to
``bench/out/search-load-<db>-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

CHILDREN_PER_FILE = 2500
N_ORGS = 200  # org-000 … org-019: CARES provider organizations (own Tasks); the rest referral partners
N_CARES_ORGS = 20
N_PRACTITIONERS = 300  # pr-000 … pr-099: care coordinators (own Tasks, CareTeam members); the rest clinicians
N_COORDINATORS = 100
TAG = {
    "tag": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST", "display": "test health data"}
    ]
}
CS = "http://cares-fhir.org/fhir/CodeSystem"

# (family, weight). Weights roughly follow US/Massachusetts frequencies; the Smith* family gives
# `Patient?name=smi` ~1.4% of patients and `name=smith` ~1.3%.
FAMILIES: list[tuple[str, int]] = [
    ("Smith", 30),
    ("Smithson", 4),
    ("Smithers", 2),
    ("Smits", 2),
    ("Johnson", 90),
    ("Williams", 80),
    ("Brown", 75),
    ("Jones", 70),
    ("Garcia", 70),
    ("Miller", 60),
    ("Davis", 60),
    ("Rodriguez", 60),
    ("Martinez", 55),
    ("Hernandez", 50),
    ("Lopez", 45),
    ("Gonzalez", 45),
    ("Wilson", 45),
    ("Anderson", 40),
    ("Thomas", 40),
    ("Taylor", 40),
    ("Moore", 38),
    ("Jackson", 38),
    ("Martin", 38),
    ("Lee", 38),
    ("Perez", 35),
    ("Thompson", 35),
    ("White", 35),
    ("Harris", 33),
    ("Sanchez", 33),
    ("Clark", 32),
    ("Ramirez", 30),
    ("Lewis", 30),
    ("Robinson", 30),
    ("Walker", 30),
    ("Young", 28),
    ("Allen", 28),
    ("King", 28),
    ("Wright", 28),
    ("Scott", 27),
    ("Torres", 27),
    ("Nguyen", 35),
    ("Hill", 26),
    ("Flores", 26),
    ("Green", 26),
    ("Adams", 25),
    ("Nelson", 25),
    ("Baker", 25),
    ("Hall", 25),
    ("Rivera", 30),
    ("Campbell", 24),
    ("Mitchell", 24),
    ("Carter", 24),
    ("Roberts", 24),
    ("Murphy", 30),
    ("Sullivan", 28),
    ("O'Brien", 22),
    ("Kelly", 22),
    ("McCarthy", 18),
    ("Walsh", 18),
    ("Ryan", 18),
    ("Silva", 25),
    ("Santos", 25),
    ("Oliveira", 20),
    ("Pereira", 20),
    ("Costa", 15),
    ("Ferreira", 15),
    ("Souza", 15),
    ("Medeiros", 12),
    ("Pierre", 18),
    ("Jean-Baptiste", 12),
    ("Joseph", 15),
    ("Louis", 10),
    ("Charles", 12),
    ("Tran", 20),
    ("Pham", 15),
    ("Le", 15),
    ("Chen", 18),
    ("Wang", 15),
    ("Patel", 20),
    ("Shah", 10),
    ("Kim", 15),
    ("Park", 10),
    ("Cohen", 12),
    ("Rossi", 10),
    ("Russo", 10),
    ("Bennett", 15),
    ("Brooks", 15),
    ("Fitzgerald", 12),
    ("Doherty", 10),
    ("Gallagher", 10),
    ("Ortiz", 15),
    ("Cruz", 15),
    ("Reyes", 15),
    ("Morales", 15),
    ("Vargas", 12),
    ("Castillo", 10),
]
GIVEN_M = [
    "Noah",
    "Liam",
    "Mateo",
    "Lucas",
    "Gabriel",
    "Elijah",
    "James",
    "Benjamin",
    "Daniel",
    "Caleb",
    "Samuel",
    "Henry",
    "Owen",
    "Leo",
    "Jayden",
    "Kevin",
    "Luis",
    "Miguel",
    "Thiago",
    "Ethan",
    "Minh",
]
GIVEN_F = [
    "Olivia",
    "Emma",
    "Sofía",
    "Isabella",
    "Mia",
    "Ava",
    "Amelia",
    "Naïka",
    "Chloe",
    "Aaliyah",
    "Camila",
    "Valentina",
    "Grace",
    "Lily",
    "Zoe",
    "Maya",
    "Ana",
    "Beatriz",
    "Linh",
    "Nora",
]
CITIES = [
    "Worcester",
    "Boston",
    "Springfield",
    "Lowell",
    "Brockton",
    "New Bedford",
    "Lynn",
    "Fall River",
    "Lawrence",
    "Fitchburg",
    "Leominster",
    "Framingham",
    "Quincy",
    "Holyoke",
    "Chelsea",
]
CONDITIONS = [
    ("67569000", "Bronchopulmonary dysplasia"),
    ("128188000", "Cerebral palsy"),
    ("84757009", "Epilepsy"),
    ("41040004", "Down syndrome"),
    ("76916001", "Spina bifida"),
    ("76670001", "Duchenne muscular dystrophy"),
    ("190905008", "Cystic fibrosis"),
    ("230745008", "Hydrocephalus"),
    ("13213009", "Congenital heart disease"),
    ("35919005", "Pervasive developmental disorder"),
]
# LOINC vital signs: (code, display, UCUM unit, low, high). 8310-5 and 39156-5 are rarer (for _has).
VITALS = [
    ("8302-2", "Body height", "cm", 45.0, 185.0, 30),
    ("29463-7", "Body weight", "kg", 2.5, 90.0, 30),
    ("8867-4", "Heart rate", "/min", 55.0, 170.0, 25),
    ("59408-5", "Oxygen saturation by pulse oximetry", "%", 85.0, 100.0, 20),
    ("9279-1", "Respiratory rate", "/min", 12.0, 50.0, 15),
    ("8310-5", "Body temperature", "Cel", 35.5, 40.0, 5),
    ("39156-5", "Body mass index", "kg/m2", 11.0, 35.0, 2),
]
REFERRAL_TYPES = ["early-intervention-school", "dme", "specialty-care", "hrsn", "family-support", "legal"]
SR_STATUS = [("active", 50), ("completed", 35), ("revoked", 5), ("on-hold", 10)]
TASK_STATUS = [("requested", 30), ("accepted", 15), ("in-progress", 20), ("completed", 30), ("cancelled", 5)]
GOAL_DOMAINS = ["clinical", "functional", "developmental", "social", "educational", "aspirational"]


PARTNER_KINDS = ["Pediatrics", "Early Intervention", "Public Schools", "Home Nursing", "Medical Supply",
                 "Family Resource Center", "Legal Clinic", "Children’s Hospital"]


def _wchoice(rng: random.Random, pairs: list[tuple]) -> tuple:
    return rng.choices(pairs, weights=[p[-1] for p in pairs], k=1)[0]


def _day(rng: random.Random, start: tuple[int, int, int], days: int) -> str:
    return (dt.date(*start) + dt.timedelta(days=rng.randrange(days))).isoformat()


def _instant(rng: random.Random, start_year: int, years: float) -> str:
    t0 = dt.datetime(start_year, 1, 1)
    return (t0 + dt.timedelta(seconds=int(rng.random() * years * 365.25 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(rtype: str, rid: str) -> dict:
    return {"reference": f"{rtype}/{rid}"}


def _coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def shared_resources() -> list[dict]:
    out: list[dict] = []
    rng = random.Random("cares-shared")
    for k in range(N_ORGS):
        cares = k < N_CARES_ORGS
        name = (
            f"{rng.choice(CITIES)} CARES Care Coordination {k:03d}"
            if cares
            else f"{rng.choice(CITIES)} {rng.choice(PARTNER_KINDS)} {k:03d}"
        )
        out.append(
            {
                "resourceType": "Organization",
                "id": f"org-{k:03d}",
                "meta": TAG,
                "active": True,
                "type": [
                    {
                        "coding": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/organization-type",
                                "prov" if cares or k % 3 else "cg",
                                "Healthcare Provider",
                            )
                        ]
                    }
                ],
                "name": name,
                "telecom": [{"system": "phone", "value": f"508-555-{k % 100:04d}", "use": "work"}],
                "address": [{"city": rng.choice(CITIES), "state": "MA", "country": "US"}],
            }
        )
    for k in range(N_PRACTITIONERS):
        fam = _wchoice(rng, FAMILIES)[0]
        female = rng.random() < 0.6
        out.append(
            {
                "resourceType": "Practitioner",
                "id": f"pr-{k:03d}",
                "meta": TAG,
                "active": True,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": f"19{k:08d}"}],
                "name": [
                    {
                        "family": fam,
                        "given": [rng.choice(GIVEN_F if female else GIVEN_M)],
                        **({"prefix": ["Dr."]} if k >= N_COORDINATORS else {}),
                    }
                ],
                "gender": "female" if female else "male",
                "telecom": [{"system": "phone", "value": f"617-555-{k % 100:04d}", "use": "work"}],
            }
        )
    return out


def child_resources(i: int) -> list[dict]:
    """The ~20 resources of child ``i`` (deterministic)."""
    rng = random.Random(f"cares-child-{i}")
    n = f"{i:06d}"
    pid = f"pat-{n}"
    subj = _ref("Patient", pid)
    female = rng.random() < 0.47
    family = _wchoice(rng, FAMILIES)[0]
    given = rng.choice(GIVEN_F if female else GIVEN_M)
    birth = _day(rng, (2005, 1, 1), 365 * 20)
    enrolled = _day(rng, (2023, 1, 1), 365 * 3)
    coordinator = f"pr-{rng.randrange(N_COORDINATORS):03d}"
    pcp = f"pr-{rng.randrange(N_COORDINATORS, N_PRACTITIONERS):03d}"
    cares_org = f"org-{rng.randrange(N_CARES_ORGS):03d}"
    out: list[dict] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "meta": TAG,
            "identifier": [{"system": "http://cares-fhir.org/fhir/sid/masshealth-member-id", "value": f"1009{i:08d}"}],
            "active": True,
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": "female" if female else "male",
            "birthDate": birth,
            "address": [
                {
                    "use": "home",
                    "city": rng.choice(CITIES),
                    "state": "MA",
                    "postalCode": f"01{rng.randrange(1000):03d}",
                    "country": "US",
                }
            ],
            "managingOrganization": _ref("Organization", cares_org),
        }
    ]
    conds = []
    for k in range(rng.choice((1, 1, 2))):
        code, disp = rng.choice(CONDITIONS)
        cid = f"cond-{n}-{k}"
        conds.append(cid)
        out.append(
            {
                "resourceType": "Condition",
                "id": cid,
                "meta": TAG,
                "clinicalStatus": {
                    "coding": [_coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")]
                },
                "verificationStatus": {
                    "coding": [_coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed")]
                },
                "category": [
                    {
                        "coding": [
                            _coding("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")
                        ]
                    }
                ],
                "code": {"coding": [_coding("http://snomed.info/sct", code, disp)], "text": disp},
                "subject": subj,
                "onsetDateTime": birth,
                "recordedDate": enrolled,
            }
        )
    ct_id = f"ct-{n}"
    out.append(
        {
            "resourceType": "CareTeam",
            "id": ct_id,
            "meta": TAG,
            "status": "active",
            "name": f"CARES care team – {given} {family}",
            "subject": subj,
            "period": {"start": enrolled},
            "participant": [
                {
                    "role": [{"coding": [_coding(f"{CS}/care-team-role", "care-coordinator")]}],
                    "member": _ref("Practitioner", coordinator),
                    "onBehalfOf": _ref("Organization", cares_org),
                },
                {"role": [{"coding": [_coding(f"{CS}/care-team-role", "pcp")]}], "member": _ref("Practitioner", pcp)},
                {"role": [{"coding": [_coding(f"{CS}/care-team-role", "parent-guardian")]}], "member": subj},
            ],
            "managingOrganization": [_ref("Organization", cares_org)],
        }
    )
    goals = []
    for k in range(rng.choice((2, 3))):
        gid = f"goal-{n}-{k}"
        goals.append(gid)
        out.append(
            {
                "resourceType": "Goal",
                "id": gid,
                "meta": TAG,
                "lifecycleStatus": rng.choice(["active", "active", "active", "completed", "on-hold"]),
                "category": [{"coding": [_coding(f"{CS}/goal-domain", rng.choice(GOAL_DOMAINS))]}],
                "description": {"text": f"Goal {k + 1} of the ICP for {given}"},
                "subject": subj,
                "startDate": enrolled,
                "target": [{"dueDate": _day(rng, (2025, 1, 1), 730)}],
            }
        )
    srs = []
    for k in range(3):
        sid = f"sr-{n}-{k}"
        srs.append(sid)
        partner = f"org-{rng.randrange(N_CARES_ORGS, N_ORGS):03d}"
        authored = _instant(rng, 2024, 2.8)
        out.append(
            {
                "resourceType": "ServiceRequest",
                "id": sid,
                "meta": TAG,
                "status": _wchoice(rng, SR_STATUS)[0],
                "intent": "order",
                "category": [
                    {"coding": [_coding("http://snomed.info/sct", "3457005", "Patient referral")]},
                    {"coding": [_coding(f"{CS}/referral-type", rng.choice(REFERRAL_TYPES))]},
                ],
                "priority": "routine",
                "code": {"text": f"Referral {k + 1} for {given}"},
                "subject": subj,
                "authoredOn": authored,
                "occurrenceDateTime": authored[:10],
                "requester": _ref("Practitioner", rng.choice((coordinator, pcp))),
                "performer": [_ref("Organization", partner)],
            }
        )
    for k, sid in enumerate(srs):
        owner = _ref("Organization", cares_org) if rng.random() < 0.5 else _ref("Practitioner", coordinator)
        authored = _instant(rng, 2024, 2.8)
        out.append(
            {
                "resourceType": "Task",
                "id": f"task-{n}-{k}",
                "meta": TAG,
                "status": _wchoice(rng, TASK_STATUS)[0],
                "intent": "order",
                "priority": "routine",
                "code": {"coding": [_coding(f"{CS}/task-code", "referral-follow-up", "30-day referral follow-up")]},
                "focus": _ref("ServiceRequest", sid),
                "for": subj,
                "authoredOn": authored,
                "lastModified": authored,
                "owner": owner,
                "restriction": {"period": {"end": _day(rng, (2024, 2, 1), 1000)}},
            }
        )
    cp_icp = f"cp-{n}-icp"
    out.append(
        {
            "resourceType": "CarePlan",
            "id": cp_icp,
            "meta": TAG,
            "status": "active",
            "intent": "plan",
            "category": [{"coding": [_coding(f"{CS}/careplan-category", "icp", "Individual Care Plan (ICP)")]}],
            "title": f"Individual Care Plan – {given} {family}",
            "subject": subj,
            "period": {"start": enrolled},
            "created": enrolled,
            "author": _ref("Practitioner", coordinator),
            "careTeam": [_ref("CareTeam", ct_id)],
            "addresses": [_ref("Condition", c) for c in conds],
            "goal": [_ref("Goal", g) for g in goals],
            "activity": [{"reference": _ref("ServiceRequest", s)} for s in srs],
        }
    )
    out.append(
        {
            "resourceType": "CarePlan",
            "id": f"cp-{n}-emer",
            "meta": TAG,
            "status": "active",
            "intent": "plan",
            "category": [{"coding": [_coding(f"{CS}/careplan-category", "emergency-plan", "Emergency plan")]}],
            "title": f"Emergency plan – {given} {family}",
            "subject": subj,
            "partOf": [_ref("CarePlan", cp_icp)],
            "period": {"start": enrolled},
            "careTeam": [_ref("CareTeam", ct_id)],
        }
    )
    for k in range(rng.choice((5, 6, 7))):
        code, disp, unit, lo, hi, _w = _wchoice(rng, VITALS)
        out.append(
            {
                "resourceType": "Observation",
                "id": f"obs-{n}-{k}",
                "meta": TAG,
                "status": "final",
                "category": [
                    {"coding": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")]}
                ],
                "code": {"coding": [_coding("http://loinc.org", code, disp)], "text": disp},
                "subject": subj,
                "effectiveDateTime": _instant(rng, 2023, 3.9),
                "valueQuantity": {
                    "value": round(lo + rng.random() * (hi - lo), 1),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return out


def data_dir(children: int) -> Path:
    return benchlib.out_dir() / "search-data" / f"c{children}"


def generate(children: int, out: Path | None = None) -> tuple[Path, int]:
    """Write shared.ndjson and children-NNN.ndjson files; return (directory, resource count)."""
    d = out or data_dir(children)
    done = d / "DONE.json"
    if done.exists():
        meta = json.loads(done.read_text())
        if meta.get("children") == children:
            return d, meta["resources"]
    d.mkdir(parents=True, exist_ok=True)
    total = 0
    counts: dict[str, int] = {}

    def write(path: Path, resources: list[dict]) -> None:
        nonlocal total
        with open(path, "w") as f:
            for r in resources:
                f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
                counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
        total += len(resources)

    write(d / "shared.ndjson", shared_resources())
    for f_no, start in enumerate(range(0, children, CHILDREN_PER_FILE)):
        res: list[dict] = []
        for i in range(start, min(children, start + CHILDREN_PER_FILE)):
            res.extend(child_resources(i))
        write(d / f"children-{f_no:03d}.ndjson", res)
    done.write_text(json.dumps({"children": children, "resources": total, "by_type": counts}, indent=1))
    return d, total


def load(children: int, db: str, files_per_process: int = 2) -> dict:
    if not db.startswith("cares_search"):
        raise SystemExit("--db must start with cares_search (this script drops and re-creates it)")
    d, total = generate(children)
    files = [d / "shared.ndjson", *sorted(d.glob("children-*.ndjson"))]
    benchlib.recreate_pg_db(db)
    url = benchlib.pg_url(db)
    groups = [files[:1]] + [
        files[1 + k : 1 + k + files_per_process] for k in range(0, len(files) - 1, files_per_process)
    ]
    steps = []
    t_all = time.monotonic()
    for g in groups:
        n_res = sum(1 for p in g for line in open(p) if line.strip())
        load1 = tuple(float(x) for x in Path("/proc/loadavg").read_text().split()[:3])
        t0 = time.monotonic()
        cpu0 = benchlib.machine_busy_s()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(
            [str(benchlib.CARES_FHIR), "load", "--quiet", "--database-url", url, *map(str, g)],
            capture_output=True,
            text=True,
            cwd=benchlib.REPO,
            # the data is CARES-shaped for search, not profile-complete: load it without the profile rules
            env={**os.environ, "CARES_FHIR_PROFILE_RULES": str(benchlib.BENCH / "no-profile-rules.json")},
        )
        dt = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        loader_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        step = {
            "files": [p.name for p in g],
            "resources": n_res,
            "seconds": round(dt, 1),
            "res_per_s": round(n_res / dt, 1),
            "loadavg_before": load1,
            "machine_busy_cpu_s": round(benchlib.machine_busy_s() - cpu0, 1),
            "loader_cpu_s": round(loader_cpu, 1),
            "rc": r.returncode,
            "stderr_tail": r.stderr.strip().splitlines()[-3:],
        }
        steps.append(step)
        benchlib.eprint(
            f"  {step['files']}: {n_res} res in {dt:.1f}s = {n_res / dt:.0f}/s (loadavg {load1}; "
            f"loader CPU {loader_cpu:.1f}s, machine busy {step['machine_busy_cpu_s']}s) "
            f"{step['stderr_tail'][-1:] if step['stderr_tail'] else ''}"
        )
        if r.returncode != 0:
            raise SystemExit(f"load failed: {r.stderr[-2000:]}")
    wall = time.monotonic() - t_all
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}", autocommit=True) as c:
        n_db = c.execute("SELECT count(*) FROM resource WHERE NOT deleted").fetchone()[0]
        size = c.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rel = c.execute("""SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), c.reltuples::bigint
                           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC""").fetchall()
    report = {
        "db": db,
        "children": children,
        "resources_in_files": total,
        "resources_in_db": n_db,
        "wall_s": round(wall, 1),
        "res_per_s": round(total / wall, 1),
        "db_size_bytes": size,
        "tables": [{"table": t, "total_bytes": tb, "heap_bytes": hb, "rows": rows} for t, tb, hb, rows in rel],
        "steps": steps,
        "machine": benchlib.machine_info(),
        "finished": benchlib.now_utc(),
    }
    path = benchlib.out_dir() / f"search-load-{db}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=1))
    benchlib.eprint(
        f"loaded {n_db} resources into {db} in {wall:.1f}s ({total / wall:.0f}/s); "
        f"database {size / 2**20:.0f} MiB; {path}"
    )
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the NDJSON files")
    g.add_argument("--children", type=int, required=True)
    g.add_argument("--out", type=Path, default=None)
    ld = sub.add_parser("load", help="generate if needed, drop/create --db, cares-fhir load, report timings")
    ld.add_argument("--children", type=int, required=True)
    ld.add_argument("--db", required=True, help="database name (must start with cares_search)")
    ld.add_argument(
        "--files-per-process",
        type=int,
        default=2,
        help=f"NDJSON files ({CHILDREN_PER_FILE} children each) per cares-fhir load process",
    )
    a = ap.parse_args()
    if a.cmd == "generate":
        t0 = time.monotonic()
        d, n = generate(a.children, a.out)
        benchlib.eprint(f"{n} resources in {d} ({time.monotonic() - t0:.1f}s)")
    else:
        load(a.children, a.db, a.files_per_process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
