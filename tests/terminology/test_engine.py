"""The expansion engine on a private store: filters, composition, loops, not-present systems, caching."""

from __future__ import annotations

import pytest

from terminology.codesystem import index_of
from terminology.errors import TerminologyError
from terminology.expand import expand
from terminology.store import Layered, Store, split_canonical
from terminology.validate import check
from tests.terminology.helpers import SCT, animals, cs_url, value_sets, vs_url

TAG = "unit"


@pytest.fixture(scope="module")
def store() -> Store:
    s = Store(files=("not-present.json",))
    s.add({**animals(TAG), "id": "cs1"})
    for i, vs in enumerate(value_sets(TAG)):
        s.add({**vs, "id": f"vs{i}"})
    return s


def codes(store: Store, name: str, lenient: bool = False) -> list[str]:
    return [i.code for i in expand(store, store.get("ValueSet", vs_url(TAG, name)), lenient=lenient).items]


@pytest.mark.parametrize(("name", "expected"), [
    ("all", ["animal", "mammal", "dog", "cat", "bird", "parrot", "rock", "puppy"]),
    ("mammals", ["mammal", "dog", "cat", "puppy"]),
    ("below-mammal", ["dog", "cat", "puppy"]),
    ("not-animal", ["rock"]),
    ("brown", ["dog"]),
    ("regex", ["cat", "parrot", "puppy"]),
    ("in", ["dog", "rock"]),
    ("listed", ["cat", "rock"]),
    ("composite", ["mammal", "dog", "puppy", "44054006"]),
    ("intersection", ["cat", "puppy"]),
])
def test_expand(store, name, expected):
    assert codes(store, name) == expected


def test_listed_display_overrides(store):
    items = expand(store, store.get("ValueSet", vs_url(TAG, "listed"))).items
    assert [i.display for i in items] == ["Cat", "Stone"]


def test_loop(store):
    with pytest.raises(TerminologyError) as e:
        codes(store, "loop-a")
    assert e.value.status == 422 and "loop" in e.value.message


def test_not_present_whole_system(store):
    with pytest.raises(TerminologyError) as e:
        codes(store, "sct-all")
    assert e.value.status == 422 and SCT in e.value.message
    exp = expand(store, store.get("ValueSet", vs_url(TAG, "sct-or-animals")), lenient=True)
    assert [i.code for i in exp.items] == ["dog"] and exp.open == {SCT}


def test_unknown_included_value_set(store):
    with pytest.raises(TerminologyError) as e:
        codes(store, "missing-vs")
    assert e.value.status == 422 and "does-not-exist" in e.value.message


def test_hierarchy_and_subsumption(store):
    idx = index_of(store.get("CodeSystem", cs_url(TAG)))
    assert idx.descendants("mammal") == ["dog", "cat", "puppy"]
    assert idx.ancestors("puppy") == ["dog", "mammal", "animal"]
    assert idx.subsumes("animal", "puppy") == "subsumes"
    assert idx.subsumes("puppy", "mammal") == "subsumed-by"
    assert idx.subsumes("cat", "cat") == "equivalent"
    assert idx.subsumes("cat", "dog") == "not-subsumed"
    assert idx.subsumes("cat", "unicorn") is None


def test_check(store):
    vs = store.get("ValueSet", vs_url(TAG, "sct-or-animals"))
    assert check(store, vs, "x", cs_url(TAG), "dog").result is True
    assert check(store, vs, "x", cs_url(TAG), "cat").result is False
    unknown = check(store, vs, "x", SCT, "123")
    assert unknown.result is None and "not available on this server" in unknown.message
    wrong = check(store, vs, "x", cs_url(TAG), "dog", "Wolf")
    assert wrong.result is True and "Wolf" in wrong.message and wrong.display == "Dog"
    assert check(store, vs, "x", cs_url(TAG), "dog", "hund").result is True  # a designation is a display


def test_cache_follows_store_changes(store):
    s = Store(files=())
    s.add({**animals("c"), "id": "cs"})
    vs = {"resourceType": "ValueSet", "id": "v", "url": "http://x/vs", "meta": {"versionId": "1"},
          "compose": {"include": [{"system": cs_url("c"), "concept": [{"code": "dog"}]}]}}
    s.add(vs)
    assert [i.code for i in expand(s, s.get("ValueSet", "http://x/vs")).items] == ["dog"]
    vs2 = {**vs, "meta": {"versionId": "2"},
           "compose": {"include": [{"system": cs_url("c"), "concept": [{"code": "cat"}]}]}}
    s.add(vs2)
    assert [i.code for i in expand(s, s.get("ValueSet", "http://x/vs")).items] == ["cat"]
    s.remove_id("ValueSet", "v")
    assert s.get("ValueSet", "http://x/vs") is None


def test_layered_and_versions():
    s = Store(files=())
    s.add({"resourceType": "ValueSet", "id": "a", "url": "http://x/v", "version": "1"})
    s.add({"resourceType": "ValueSet", "id": "b", "url": "http://x/v", "version": "2"})
    assert s.get("ValueSet", "http://x/v|1")["id"] == "a"
    assert s.get("ValueSet", "http://x/v|9")["id"] == "b"  # an unknown pinned version falls back
    assert s.get("ValueSet", "http://x/v")["id"] == "b"
    layered = Layered(s, {("ValueSet", "http://x/v"): [{"resourceType": "ValueSet", "id": "c", "url": "http://x/v"}]})
    assert layered.get("ValueSet", "http://x/v")["id"] == "c"
    assert split_canonical("http://x/v|4.0.1") == ("http://x/v", "4.0.1")


def test_bad_filters(store):
    s = Store(files=())
    s.add({**animals("b"), "id": "cs"})
    for f, status in (({"property": "concept", "op": "regex", "value": "("}, 400),
                      ({"property": "concept", "op": "frobnicate", "value": "x"}, 422),
                      ({"property": "concept", "op": "is-a"}, 400)):
        vs = {"resourceType": "ValueSet", "url": "http://x/bad", "compose": {"include": [
            {"system": cs_url("b"), "filter": [f]}]}}
        with pytest.raises(TerminologyError) as e:
            expand(s, vs)
        assert e.value.status == status, f
