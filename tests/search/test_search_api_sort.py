"""_sort, keyset paging with next/previous/first links, _total — over HTTP on both backends."""

from __future__ import annotations

import pytest

from tests.search.api_helpers import all_ids, error, get, ids, link, make


def _patients(fhir, tag: str) -> dict[str, str]:
    data = {  # key: (family, birthDate or None, gender or None)
        "a": ("Baker", "2010-03-01", "male"),
        "b": ("adams", "2012-01-01", "female"),
        "c": ("Clark", None, "male"),
        "d": ("Adams", "2010-03-01", None),
        "e": (None, "2015-07-07", "female"),
        "f": ("Ávila", "2011", "other"),
    }
    out = {}
    for key, (family, birth, gender) in data.items():
        res: dict = {"resourceType": "Patient", "identifier": [{"system": "urn:sort", "value": tag}]}
        if family:
            res["name"] = [{"family": family, "given": [key]}]
        if birth:
            res["birthDate"] = birth
        if gender:
            res["gender"] = gender
        out[key] = make(fhir, res)
    return out


def _keys(fhir, p: dict[str, str], params: dict, **kw) -> list[str]:
    back = {v: k for k, v in p.items()}
    return [back[i] for i in all_ids(fhir, "Patient", params, **kw)]


@pytest.mark.parametrize("count", ["1", "2", "4", "50"])
def test_sort_orders_and_pages(fhir, tag, count):
    p = _patients(fhir, tag)
    q = {"identifier": f"urn:sort|{tag}", "_count": count}
    # birthdate ascending; no value last; ties by creation (rkey)
    assert _keys(fhir, p, {**q, "_sort": "birthdate"}) == ["a", "d", "f", "b", "e", "c"]
    assert _keys(fhir, p, {**q, "_sort": "-birthdate"}) == ["e", "b", "f", "a", "d", "c"]
    # string sort is case- and accent-insensitive (on the normalised value), min of the names
    assert _keys(fhir, p, {**q, "_sort": "family"}) == ["b", "d", "f", "a", "c", "e"]
    assert _keys(fhir, p, {**q, "_sort": "-family,-birthdate"}) == ["c", "a", "f", "b", "d", "e"]
    assert _keys(fhir, p, {**q, "_sort": "gender,-birthdate"}) == ["e", "b", "a", "c", "f", "d"]
    assert _keys(fhir, p, {**q, "_sort": "-_lastUpdated"}) == ["f", "e", "d", "c", "b", "a"]
    assert _keys(fhir, p, {**q, "_sort": "_lastUpdated"}) == ["a", "b", "c", "d", "e", "f"]
    by_id = sorted(p, key=lambda k: p[k])
    assert _keys(fhir, p, {**q, "_sort": "_id"}) == by_id
    assert _keys(fhir, p, {**q, "_sort": "-_id"}) == by_id[::-1]


def test_sort_previous_links(fhir, tag):
    p = _patients(fhir, tag)
    q = {"identifier": f"urn:sort|{tag}", "_count": "2", "_sort": "-family"}
    expected = ["c", "a", "f", "b", "d", "e"]
    back = {v: k for k, v in p.items()}
    pages = [get(fhir, "Patient", q)]
    assert link(pages[0], "previous") is None and link(pages[0], "first") is None
    while link(pages[-1], "next"):
        pages.append(get(fhir, link(pages[-1], "next")))
    assert [[back[i] for i in ids(pg)] for pg in pages] == [expected[0:2], expected[2:4], expected[4:6]]
    assert link(pages[-1], "next") is None
    # walk back with previous links: the same pages in reverse
    page = pages[-1]
    seen = []
    while link(page, "previous"):
        page = get(fhir, link(page, "previous"))
        seen.append([back[i] for i in ids(page)])
    assert seen == [expected[2:4], expected[0:2]]
    # a previous page has a next link to the page after it, and a first link
    assert [back[i] for i in ids(get(fhir, link(page, "next")))] == expected[2:4]
    assert [back[i] for i in ids(get(fhir, link(pages[2], "first")))] == expected[0:2]


def test_unsorted_previous_and_writes_while_paging(fhir, tag):
    made = [make(fhir, {"resourceType": "Basic", "code": {"coding": [{"system": "urn:pg", "code": tag}]}})
            for _ in range(5)]
    q = {"code": f"urn:pg|{tag}", "_count": "2"}
    p1 = get(fhir, "Basic", q)
    p2 = get(fhir, link(p1, "next"))
    assert ids(get(fhir, link(p2, "previous"))) == ids(p1) == made[:2]
    # sorted paging visits each match once while resources are created and updated meanwhile
    sq = {**q, "_sort": "-_lastUpdated"}
    page = get(fhir, "Basic", sq)
    seen = ids(page)
    extra = make(fhir, {"resourceType": "Basic", "code": {"coding": [{"system": "urn:pg", "code": tag}]}})
    while link(page, "next"):
        page = get(fhir, link(page, "next"))
        seen += ids(page)
    assert extra not in seen  # created after the first page: it sorts before the cursor
    assert seen == made[::-1]


def test_total(fhir, tag):
    for _ in range(3):
        make(fhir, {"resourceType": "Basic", "code": {"coding": [{"system": "urn:tot", "code": tag}]}})
    q = {"code": f"urn:tot|{tag}", "_count": "1"}
    assert get(fhir, "Basic", {**q, "_total": "accurate"})["total"] == 3
    assert get(fhir, "Basic", {**q, "_total": "estimate"})["total"] == 3
    assert "total" not in get(fhir, "Basic", {**q, "_total": "none"})
    assert "total" not in get(fhir, "Basic", {**q, "_total": "none", "_count": "10"})
    assert get(fhir, "Basic", {**q, "_count": "10"})["total"] == 3
    assert get(fhir, "Basic", {**q, "_summary": "count"})["total"] == 3


def test_sort_errors(fhir, tag):
    for value in ("", "-", "nope-not-a-param,", "name,name", "_text"):
        error(fhir, "Patient", {"_sort": value, "identifier": tag})
    r = fhir.get("Patient", params={"_sort": "nope"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400
    # a cursor from another _sort is refused
    make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})
    make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})
    page = get(fhir, "Patient", {"identifier": tag, "_count": "1", "_sort": "birthdate"})
    cursor = [v for k, v in __import__("urllib.parse").parse.parse_qsl(link(page, "next").split("?", 1)[1])
              if k == "_cursor"][0]
    body = error(fhir, "Patient", {"identifier": tag, "_sort": "family,gender", "_cursor": cursor})
    assert "_cursor" in body["issue"][0]["diagnostics"]
