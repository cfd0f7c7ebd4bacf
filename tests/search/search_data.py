"""Test data for the search tests: a small database (SQLite, and PostgreSQL when reachable) with
hand-written resource and index rows, and a fake search-parameter registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy

from fhir_server.indexing.dates import parse_date_range
from fhir_server.indexing.references import parse_reference
from fhir_server.indexing.strings import normalize
from fhir_server.storage.schema import metadata

PG_URL = os.environ.get("CARES_FHIR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BASE = "http://base/fhir"


@dataclass(frozen=True)
class FakeParam:
    code: str
    type: str
    expression: str | None = "x"
    targets: tuple[str, ...] = ()
    base: tuple[str, ...] = ()


class FakeRegistry:
    """The slice of SearchParamRegistry the search module uses: get(rtype, code) -> param | None."""

    def __init__(self, params: dict[str, list[FakeParam]]) -> None:
        self._params = {rtype: {p.code: p for p in ps} for rtype, ps in params.items()}

    def get(self, rtype: str, code: str) -> FakeParam | None:
        return self._params.get(rtype, {}).get(code)

    def params_for(self, rtype: str) -> dict[str, FakeParam]:
        return dict(self._params.get(rtype, {}))


REGISTRY = FakeRegistry({
    "Patient": [
        FakeParam("name", "string"),
        FakeParam("family", "string"),
        FakeParam("birthdate", "date"),
        FakeParam("active", "token"),
        FakeParam("gender", "token"),
        FakeParam("identifier", "token"),
        FakeParam("organization", "reference", targets=("Organization",)),
        FakeParam("general-practitioner", "reference", targets=("Organization", "Practitioner", "PractitionerRole")),
        FakeParam("link", "reference", targets=("Patient", "RelatedPerson")),
        FakeParam("_text", "string", expression=None),
        FakeParam("_tag", "token"),
    ],
    "Observation": [
        FakeParam("subject", "reference", targets=("Patient", "Group", "Device", "Location")),
        FakeParam("code", "token"),
        FakeParam("value-quantity", "quantity"),
        FakeParam("date", "date"),
        FakeParam("combo-code-value-quantity", "composite"),
    ],
    "RiskAssessment": [FakeParam("probability", "number")],
    "ValueSet": [FakeParam("url", "uri")],
    "Organization": [FakeParam("name", "string")],
})

UCUM = "http://unitsofmeasure.org"


def _lu(day: str) -> int:
    return parse_date_range(day)[0]


# rkey, rtype, id, last_updated, deleted, index rows {table: [(param, ...columns)]}
RESOURCES: list[tuple[int, str, str, str, bool, dict[str, list[tuple]]]] = [
    (1, "Patient", "p1", "2024-01-01", False, {
        "string": [("name", "Smith"), ("name", "John")],
        "date": [("birthdate", "1970-01-01")],
        "token": [("active", None, "true"), ("gender", None, "male"), ("identifier", "http://ids", "A1")],
        "reference": [("organization", "Organization/o1"), ("general-practitioner", "Practitioner/pr1")],
    }),
    (2, "Patient", "p2", "2024-01-02", False, {
        "string": [("name", "Smíth"), ("name", "Ann")],
        "date": [("birthdate", "1980-05")],
        "token": [("active", None, "false"), ("gender", None, "female"), ("identifier", None, "A2")],
        "reference": [("organization", "Organization/o2"), ("organization", "Organization/o3")],
    }),
    (3, "Patient", "p3", "2024-01-03", False, {
        "string": [("name", "O'Brien,Jr"), ("name", "100%_sure")],
        "date": [("birthdate", "1990-06-15T10:00:00Z")],
        "token": [("gender", None, "other"), ("identifier", "http://ids", "a|b")],
        "reference": [("organization", "http://elsewhere/fhir/Organization/o1")],
    }),
    (4, "Patient", "p4", "2024-01-04", True, {  # deleted: never matched
        "string": [("name", "Smith")],
        "token": [("gender", None, "male")],
        "reference": [("organization", "Organization/o1")],
    }),
    (5, "Patient", "p5", "2024-02-01", False, {
        "string": [("name", "Jones"), ("name", "back\\slash"), ("name", "N" * 255)],
        "date": [("birthdate", ("1975-01-01", "1985-12-31"))],
        "token": [("gender", None, "unknown"), ("identifier", "http://long", "L" * 255)],  # cut by the indexer
        "reference": [("organization", "http://base/fhir/Organization/o2"), ("link", "Patient/p1")],
    }),
    (10, "Organization", "o1", "2024-01-01", False, {"string": [("name", "Acme")]}),
    (11, "Organization", "o2", "2024-01-01", False, {"string": [("name", "Beta")]}),
    (12, "Organization", "o3", "2024-01-01", True, {}),
    (13, "Practitioner", "pr1", "2024-01-01", False, {}),
    (20, "Observation", "ob1", "2024-01-01", False, {
        "reference": [("subject", "Patient/p1")],
        "token": [("code", "http://loinc.org", "1234")],
        "quantity": [("value-quantity", UCUM, "mg", 5.4)],
        "date": [("date", "2020-01-01T00:00:00Z")],
    }),
    (21, "Observation", "ob2", "2024-01-01", False, {
        "reference": [("subject", "Patient/p2")],
        "token": [("code", "http://loinc.org", "5678")],
        "quantity": [("value-quantity", UCUM, "kg", 100.0)],
    }),
    (22, "Observation", "ob3", "2024-01-01", False, {
        "reference": [("subject", "Patient/p1")],
        "quantity": [("value-quantity", None, "mg", 0.5)],
    }),
    (23, "Observation", "ob4", "2024-01-01", False, {"reference": [("subject", "urn:uuid:abc")]}),
    (24, "Observation", "ob6", "2024-01-01", True, {"reference": [("subject", "Patient/p1")]}),
    (30, "RiskAssessment", "ra1", "2024-01-01", False, {"number": [("probability", 0.8)]}),
    (31, "RiskAssessment", "ra2", "2024-01-01", False, {"number": [("probability", 0.25)]}),
    (32, "RiskAssessment", "ra3", "2024-01-01", False, {"number": [("probability", 100.0)]}),
    (33, "RiskAssessment", "ra4", "2024-01-01", False, {"number": [("probability", 100.4)]}),
    (34, "RiskAssessment", "ra5", "2024-01-01", False, {"number": [("probability", 99.5)]}),
    (40, "ValueSet", "vs1", "2024-01-01", False, {"uri": [("url", "http://acme.org/fhir/ValueSet/123")]}),
    (41, "ValueSet", "vs2", "2024-01-01", False, {"uri": [("url", "http://acme.org/fhir/ValueSet/124")]}),
    (42, "ValueSet", "vs3", "2024-01-01", False, {"uri": [("url", "http://other.org/x")]}),
    (43, "ValueSet", "vs4", "2024-01-01", False, {"uri": [("url", "http://acme.org/fhir")]}),
]


def _index_rows(rkey: int, rtype: str, rows: dict[str, list[tuple]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, items in rows.items():
        table = f"idx_{kind}"
        for item in items:
            row: dict[str, Any] = {"rkey": rkey, "rtype": rtype, "param": item[0]}
            if kind == "string":
                row.update(norm=normalize(item[1]), exact=item[1])
            elif kind == "token":
                row.update(system=item[1], code=item[2], text=None)
            elif kind == "reference":
                ttype, tid, url = parse_reference(item[1])  # type: ignore[misc]
                row.update(target_type=ttype, target_id=tid, url=url)
            elif kind == "date":
                v = item[1]
                if isinstance(v, tuple):
                    low, high = parse_date_range(v[0])[0], parse_date_range(v[1])[1]
                else:
                    low, high = parse_date_range(v)
                row.update(low=low, high=high)
            elif kind == "uri":
                row.update(uri=item[1])
            elif kind == "number":
                row.update(value=item[1])
            elif kind == "quantity":
                row.update(system=item[1], code=item[2], value=item[3])
            out.setdefault(table, []).append(row)
    return out


def load(engine: sqlalchemy.Engine) -> None:
    metadata.create_all(engine)
    tables = metadata.tables
    with engine.begin() as conn:
        for rkey, rtype, rid, lu, deleted, rows in RESOURCES:
            conn.execute(tables["resource"].insert().values(
                rkey=rkey, rtype=rtype, id=rid, version=1, last_updated=_lu(lu), deleted=deleted,
                body=None if deleted else f'{{"resourceType":"{rtype}","id":"{rid}"}}'))
            for table, trows in _index_rows(rkey, rtype, rows).items():
                conn.execute(tables[table].insert(), trows)


class Db:
    """Runs the compiled SQL (``%s`` placeholders) as the DB layer will."""

    name: str

    def query(self, sql: str, args: list) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteDb(Db):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.path = path
        self.conn = sqlite3.connect(str(path))

    def query(self, sql: str, args: list) -> list[tuple]:
        return self.conn.execute(sql.replace("%s", "?").replace("%%", "%"), args).fetchall()

    def close(self) -> None:
        self.conn.close()


class PgDb(Db):
    name = "postgres"

    def __init__(self, schema: str) -> None:
        import psycopg

        self.schema = schema
        self.conn = psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={schema}")

    def query(self, sql: str, args: list) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def close(self) -> None:
        self.conn.close()


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: skip
        return False


def make_sqlite(tmp: Path) -> SqliteDb:
    path = tmp / "search.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    load(engine)
    engine.dispose()
    return SqliteDb(path)


# -- the real registry and indexer, end to end ----------------------------------------------------

REAL_RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "org1", "name": "Acme Health"},
    {"resourceType": "Practitioner", "id": "doc1", "name": [{"family": "Welby"}]},
    {"resourceType": "Patient", "id": "pat1", "active": True, "gender": "male", "birthDate": "1970-01-01",
     "name": [{"family": "Smith", "given": ["John"]}],
     "identifier": [{"system": "http://hospital/mrn", "value": "MRN-1"}],
     "telecom": [{"system": "phone", "value": "555-0100"}],
     "address": [{"city": "Boston", "state": "MA"}],
     "managingOrganization": {"reference": "Organization/org1"},
     "generalPractitioner": [{"reference": "Practitioner/doc1"}],
     "meta": {"tag": [{"system": "http://tags", "code": "vip"}], "profile": ["http://example.org/StructureDefinition/p"]}},
    {"resourceType": "Patient", "id": "pat2", "active": False, "gender": "female", "birthDate": "1985-06",
     "name": [{"family": "Müller", "given": ["Anna"]}],
     "address": [{"city": "Cambridge"}],
     "deceasedBoolean": True},
    {"resourceType": "Observation", "id": "obs1", "status": "final",
     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
     "subject": {"reference": "Patient/pat1"}, "effectiveDateTime": "2021-03-04T10:00:00Z",
     "valueQuantity": {"value": 72, "unit": "beats/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
    {"resourceType": "Observation", "id": "obs2", "status": "preliminary",
     "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
     "subject": {"reference": "Patient/pat2"}, "effectivePeriod": {"start": "2021-01-01", "end": "2021-02-01"},
     "valueQuantity": {"value": 60.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
    {"resourceType": "ValueSet", "id": "vs1", "url": "http://example.org/fhir/ValueSet/colors", "status": "active"},
    {"resourceType": "RiskAssessment", "id": "risk1", "status": "final", "subject": {"reference": "Patient/pat1"},
     "prediction": [{"probabilityDecimal": 0.35}]},
]


def load_real(engine: sqlalchemy.Engine, registry: Any) -> None:
    """Index REAL_RESOURCES with the real indexer (``extract_index_rows``) and store them."""
    import json

    from fhir_server.indexing import extract_index_rows

    metadata.create_all(engine)
    tables = metadata.tables
    with engine.begin() as conn:
        for n, res in enumerate(REAL_RESOURCES, start=1):
            conn.execute(tables["resource"].insert().values(
                rkey=n, rtype=res["resourceType"], id=res["id"], version=1, last_updated=_lu("2024-01-01") + n,
                deleted=False, body=json.dumps(res)))
            for kind, rows in extract_index_rows(registry, res).items():
                table = tables[f"idx_{kind}"]
                cols = [c.name for c in table.columns][3:]
                conn.execute(table.insert(), [{"rkey": n, "rtype": res["resourceType"], "param": row[0],
                                               **dict(zip(cols, row[1:], strict=True))} for row in rows])
