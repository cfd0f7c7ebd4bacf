"""Keyset paging, result parameters, _include / _revinclude — run on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest

from fhir_server.search import (
    Cursor,
    compile_count,
    compile_includes,
    compile_page,
    decode_cursor,
    encode_cursor,
    parse_search,
)
from tests.search.search_data import BASE, REGISTRY, make_sqlite


def parse(rtype: str, params: list[tuple[str, str]], **kw):
    return parse_search(rtype, params, REGISTRY, base_url=BASE, **kw)


def all_pages(db, rtype: str, params: list[tuple[str, str]]) -> list[list[str]]:
    """Follow next links the way the HTTP layer does; the pages' ids."""
    pages: list[list[str]] = []
    while True:
        parsed = parse(rtype, params)
        sql, args = compile_page(parsed)
        rows = db.query(sql, args)
        has_next = len(rows) > parsed.count
        rows = rows[: parsed.count]
        pages.append([r[1] for r in rows])
        if not has_next:
            return pages
        params = parsed.next_link_params(rows[-1][0])
        assert len(pages) < 50


def test_search_paging_visits_each_match_once(db) -> None:
    assert all_pages(db, "Patient", [("_count", "2")]) == [["p1", "p2"], ["p3", "p5"]]
    assert all_pages(db, "Patient", [("_count", "3")]) == [["p1", "p2", "p3"], ["p5"]]
    assert all_pages(db, "Patient", [("_count", "4")]) == [["p1", "p2", "p3", "p5"]]
    assert all_pages(db, "Patient", [("_count", "1"), ("name", "smi")]) == [["p1"], ["p2"]]
    assert all_pages(db, "RiskAssessment", [("probability", "ge0.5"), ("_count", "2")]) == [
        ["ra1", "ra3"], ["ra4", "ra5"]]


def test_search_count_zero_and_total(db) -> None:
    parsed = parse("Patient", [("_count", "0"), ("_total", "accurate")])
    assert parsed.count == 0 and parsed.total == "accurate"
    sql, args = compile_page(parsed)
    assert len(db.query(sql, args)) == 1  # LIMIT count+1: tells there are matches
    sql, args = compile_count(parsed)
    assert db.query(sql, args)[0][0] == 4
    sql, args = compile_count(parse("Patient", [("gender", "male,female"), ("_cursor", encode_cursor(1))]))
    assert db.query(sql, args)[0][0] == 2  # the count ignores the cursor


def test_search_cursor_starts_after_rkey(db) -> None:
    parsed = parse("Patient", [("_cursor", encode_cursor(2))])
    assert parsed.cursor == Cursor(2)
    sql, args = compile_page(parsed)
    assert [r[1] for r in db.query(sql, args)] == ["p3", "p5"]


def test_search_page_columns(db) -> None:
    sql, args = compile_page(parse("Patient", [("_id", "p1")]))
    ((rkey, rid, version, last_updated, body, rtype),) = db.query(sql, args)
    assert rtype == "Patient"
    assert (rkey, rid, version) == (1, "p1", 1)
    assert isinstance(last_updated, int)
    assert body == '{"resourceType":"Patient","id":"p1"}'


def test_search_paging_stable_under_concurrent_writes(tmp_path) -> None:
    db = make_sqlite(tmp_path)
    try:
        parsed = parse("Patient", [("_count", "2")])
        sql, args = compile_page(parsed)
        rows = db.query(sql, args)[:2]
        assert [r[1] for r in rows] == ["p1", "p2"]
        # meanwhile: p1 is updated (same rkey), a new patient is created, p3 is deleted
        conn = sqlite3.connect(str(db.path))
        conn.execute("UPDATE resource SET version = 2, last_updated = last_updated + 1 WHERE id = 'p1'")
        conn.execute("INSERT INTO resource (rkey, rtype, id, version, last_updated, deleted, body) "
                     "VALUES (100, 'Patient', 'p9', 1, 0, 0, '{}')")
        conn.execute("UPDATE resource SET deleted = 1, body = NULL WHERE id = 'p3'")
        conn.commit()
        conn.close()
        db.conn.close()
        db.conn = sqlite3.connect(str(db.path))
        nxt = parse("Patient", parsed.next_link_params(rows[-1][0]))
        sql, args = compile_page(nxt)
        assert [r[1] for r in db.query(sql, args)] == ["p5", "p9"]
    finally:
        db.close()


def test_search_link_params() -> None:
    params = [("name", "smi"), ("_count", "2"), ("foo", "bar"), ("_format", "json"), ("gender", "male,female"),
              ("_cursor", encode_cursor(7))]
    parsed = parse("Patient", params)
    assert parsed.count == 2 and parsed.cursor == Cursor(7)
    nxt = parsed.next_link_params(42)
    assert nxt == [("name", "smi"), ("_format", "json"), ("gender", "male,female"), ("_count", "2"),
                   ("_cursor", encode_cursor(42))]
    assert parsed.self_link_params() == [("name", "smi"), ("_format", "json"), ("gender", "male,female"),
                                         ("_count", "2"), ("_cursor", encode_cursor(7))]
    assert parsed.first_link_params() == [("name", "smi"), ("_format", "json"), ("gender", "male,female"),
                                          ("_count", "2")]
    # the unknown parameter was ignored with a warning naming it, and left out of the links
    assert [w.expression for w in parsed.warnings] == [("foo",)]
    assert "foo" in parsed.warnings[0].diagnostics and parsed.warnings[0].code == "not-supported"
    # default count, and the next link carries it
    parsed = parse("Patient", [("name", "smi")], default_count=7)
    assert parsed.count == 7
    assert parsed.next_link_params(3)[-2] == ("_count", "7")


def test_search_count_clamped() -> None:
    parsed = parse("Patient", [("_count", "5000")], max_count=100)
    assert parsed.count == 100
    assert any("_count" in w.expression for w in parsed.warnings)
    assert parse("Patient", [], default_count=500, max_count=100).count == 100


def test_search_cursor_round_trip() -> None:
    for k in (0, 1, 42, 2**62):
        token = encode_cursor(k)
        assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
        assert decode_cursor(token) == Cursor(k)


def test_search_result_params() -> None:
    parsed = parse("Patient", [("_summary", "count"), ("_elements", "name,gender"), ("_total", "none"),
                               ("_format", "xml"), ("_pretty", "true")])
    assert parsed.summary == "count"
    assert parsed.elements == ("name", "gender")
    assert parsed.total == "none"
    assert parsed.criteria == []
    for s in ("true", "text", "data", "false"):
        assert parse("Patient", [("_summary", s)]).summary == s
    for t in ("none", "estimate", "accurate"):
        assert parse("Patient", [("_total", t)]).total == t
    p = parse("Patient", [])
    assert (p.summary, p.elements, p.total, p.cursor, p.count) == (None, None, None, None, 20)
    assert parse("Patient", [("_count", "5"), ("_count", "5")]).count == 5


# -- _include / _revinclude ------------------------------------------------------------------------

def includes(db, rtype: str, params: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    parsed = parse(rtype, params)
    sql, args = compile_page(parsed)
    rkeys = [r[0] for r in db.query(sql, args)]
    out = []
    for sql, args in compile_includes(parsed, rkeys):
        rows = db.query(sql, args)
        assert all(len(r) == 6 for r in rows)
        out.append([(r[5], r[1]) for r in rows])
    return out


INCLUDE_CASES = [
    ("Patient", "_id=p1,p2&_include=Patient:organization", [[("Organization", "o1"), ("Organization", "o2")]]),
    ("Patient", "_id=p2,p5&_include=Patient:organization", [[("Organization", "o2")]]),  # deduplicated
    ("Patient", "_id=p3&_include=Patient:organization", [[]]),  # reference to another server
    ("Patient", "_id=p5&_include=Patient:organization", [[("Organization", "o2")]]),  # absolute, own base
    ("Patient", "_id=p2&_include=Patient:organization", [[("Organization", "o2")]]),  # o3 deleted
    ("Patient", "_id=p1&_include=Patient:general-practitioner", [[("Practitioner", "pr1")]]),
    ("Patient", "_id=p1&_include=Patient:general-practitioner:Practitioner", [[("Practitioner", "pr1")]]),
    ("Patient", "_id=p1&_include=Patient:general-practitioner:Organization", [[]]),
    ("Patient", "_id=p5&_include=Patient:link:Patient", [[("Patient", "p1")]]),
    ("Patient", "_id=p1&_include=Patient:organization&_include=Patient:general-practitioner",
     [[("Organization", "o1")], [("Practitioner", "pr1")]]),
    ("Patient", "_id=p1&_revinclude=Observation:subject", [[("Observation", "ob1"), ("Observation", "ob3")]]),
    ("Patient", "_id=p1,p2&_revinclude=Observation:subject:Patient",
     [[("Observation", "ob1"), ("Observation", "ob2"), ("Observation", "ob3")]]),
    ("Patient", "_id=p3&_revinclude=Observation:subject", [[]]),
    ("Patient", "_id=p1&_revinclude=Patient:link", [[("Patient", "p5")]]),
    ("Organization", "_id=o2&_revinclude=Patient:organization", [[("Patient", "p2"), ("Patient", "p5")]]),
    ("Organization", "_id=o1&_revinclude=Patient:organization", [[("Patient", "p1")]]),  # p4 deleted, p3 foreign
    ("Patient", "_id=p1&_include=Patient:organization&_revinclude=Observation:subject",
     [[("Organization", "o1")], [("Observation", "ob1"), ("Observation", "ob3")]]),
    ("Observation", "_id=ob1,ob2,ob4&_include=Observation:subject", [[("Patient", "p1"), ("Patient", "p2")]]),
    ("Observation", "_id=ob1&_include=Observation:subject:Group", [[]]),
    ("Patient", "_id=nope&_include=Patient:organization", []),  # no matches, no include queries
]


@pytest.mark.parametrize(("rtype", "query", "expected"), INCLUDE_CASES, ids=[f"{t}?{q}" for t, q, _ in INCLUDE_CASES])
def test_search_includes(db, rtype: str, query: str, expected) -> None:
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    assert includes(db, rtype, params) == expected  # type: ignore[arg-type]


def test_search_include_limit_and_empty(db) -> None:
    parsed = parse("Patient", [("_revinclude", "Observation:subject")])
    assert compile_includes(parsed, []) == []
    ((sql, args),) = compile_includes(parsed, [1, 1, 2], limit=2)
    assert [r[1] for r in db.query(sql, args)] == ["ob1", "ob2"]


def test_search_include_parsed() -> None:
    parsed = parse("Patient", [("_include", "Patient:organization"), ("_include", "Patient:organization"),
                               ("_include", "Patient:general-practitioner:Practitioner"),
                               ("_revinclude", "Observation:subject")])
    assert [(i.source_type, i.param, i.target_type) for i in parsed.includes] == [
        ("Patient", "organization", None), ("Patient", "general-practitioner", "Practitioner")]
    assert [(i.source_type, i.param, i.target_type) for i in parsed.revincludes] == [
        ("Observation", "subject", None)]
    # an include naming an unknown parameter is ignored with a warning (400 when strict)
    parsed = parse("Patient", [("_include", "Patient:nope")])
    assert parsed.includes == [] and "Patient:nope" in parsed.warnings[0].diagnostics
