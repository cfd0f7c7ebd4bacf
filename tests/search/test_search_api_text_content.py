"""``_text`` (the narrative) and ``_content`` (every string of the resource) over HTTP on both backends
(R4 search.html#text): words are case- and accent-insensitive, each query word a word or the start
of one; several words must all occur; a comma separates alternatives."""

from __future__ import annotations

from tests.search.api_helpers import error, found, get, make

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _div(text: str) -> dict:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>'}


def _data(fhir, tag: str) -> dict[str, str]:
    pat = make(fhir, {"resourceType": "Patient", "identifier": [{"value": tag}]})
    subject = {"reference": f"Patient/{pat}"}
    out = {}
    out["fever"] = make(fhir, {
        "resourceType": "Condition", "identifier": [{"value": tag}],
        "text": _div(f"<p>Patient <b>Zoë</b> presented with high Fever{tag} and a cough.</p>"),
        "code": {"text": f"Pyrexia{tag}"},
        "note": [{"text": f"Follow up with Dr. Ångström{tag} in two weeks"}],
        "subject": {**subject, "display": "Anonymous"}})
    out["rash"] = make(fhir, {
        "resourceType": "Condition", "identifier": [{"value": tag}],
        "text": _div(f"<table><tr><td>Rash{tag}</td><td>mild</td></tr></table>"),
        "code": {"text": f"Dermatitis{tag}"}, "subject": subject,
        "clinicalStatus": {"coding": [{"code": "active"}]}})
    out["plain"] = make(fhir, {  # no narrative at all
        "resourceType": "Condition", "identifier": [{"value": tag}],
        "code": {"text": f"Fever{tag} without narrative"}, "subject": subject,
        "note": [{"text": "the patient's temperature: 39°C"}]})
    return out


def test_text_narrative(fhir, tag):
    d = _data(fhir, tag)
    q = {"identifier": tag}
    assert found(fhir, "Condition", {**q, "_text": f"fever{tag}"}) == [d["fever"]]
    # case and accents do not matter; a word prefix is enough
    assert found(fhir, "Condition", {**q, "_text": f"FEVER{tag.upper()}"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_text": "zoe"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_text": "Zoë"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_text": "presen"}) == [d["fever"]]
    # the markup is not text: tag and attribute names do not match
    for markup in ("div", "xmlns", "table", "td", "xhtml"):
        assert found(fhir, "Condition", {**q, "_text": markup}) == [], markup
    # only the narrative: the code text and the notes are not searched by _text
    assert found(fhir, "Condition", {**q, "_text": f"pyrexia{tag}"}) == []
    assert found(fhir, "Condition", {**q, "_text": f"angstrom{tag}"}) == []
    # inside a word is not a match (only the start of a word)
    assert found(fhir, "Condition", {**q, "_text": "ever"}) == []
    # all words must occur (AND), commas are alternatives (OR)
    assert found(fhir, "Condition", {**q, "_text": f"cough fever{tag}"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_text": f"cough rash{tag}"}) == []
    assert found(fhir, "Condition", {**q, "_text": f"cough fever{tag},rash{tag} mild"}) == sorted(
        [d["fever"], d["rash"]])
    assert found(fhir, "Condition", {**q, "_text": f"nothing{tag}"}) == []
    # words in separate table cells
    assert found(fhir, "Condition", {**q, "_text": "mild"}) == [d["rash"]]


def test_content_whole_resource(fhir, tag):
    d = _data(fhir, tag)
    q = {"identifier": tag}
    # a string deep in the resource (Condition.note.text), accent-insensitive
    assert found(fhir, "Condition", {**q, "_content": f"angstrom{tag}"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_content": f"ÅNGSTRÖM{tag}"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_content": f"pyrexia{tag}"}) == [d["fever"]]
    # the narrative is content too; a resource without narrative matches through its data
    assert found(fhir, "Condition", {**q, "_content": f"fever{tag}"}) == sorted([d["fever"], d["plain"]])
    assert found(fhir, "Condition", {**q, "_content": "temperature 39"}) == [d["plain"]]
    assert found(fhir, "Condition", {**q, "_content": "anonymous"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_content": f"fever{tag} cough"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_content": f"dermatitis{tag},narrative"}) == sorted(
        [d["rash"], d["plain"]])
    assert found(fhir, "Condition", {**q, "_content": "div"}) == []
    assert found(fhir, "Condition", {**q, "_content": f"nope{tag}"}) == []
    b = get(fhir, "Condition", {**q, "_content": f"nope{tag}"})
    assert b["resourceType"] == "Bundle" and b.get("entry", []) == []


def test_text_content_combined(fhir, tag):
    d = _data(fhir, tag)
    q = {"identifier": tag}
    assert found(fhir, "Condition", {**q, "_content": f"fever{tag}", "_text": "cough"}) == [d["fever"]]
    assert found(fhir, "Condition", {**q, "_content": f"fever{tag}", "clinical-status": "active"}) == []
    assert found(fhir, "Condition", {**q, "_content": "mild", "clinical-status": "active"}) == [d["rash"]]
    assert found(fhir, "Condition", [*q.items(), ("_content", f"fever{tag}"), ("_content", "anonymous")]) == [
        d["fever"]]
    page = get(fhir, "Condition", {**q, "_content": f"fever{tag}", "_count": "1", "_total": "accurate"})
    assert page["total"] == 2 and len(page["entry"]) == 1
    # without another criterion
    assert found(fhir, "Condition", {"_content": f"dermatitis{tag}"}) == [d["rash"]]
    # through a chain
    ev = make(fhir, {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                     "identifier": [{"value": tag}],
                     "diagnosis": [{"condition": {"reference": f"Condition/{d['rash']}"}}]})
    assert found(fhir, "Encounter", {"diagnosis:Condition._content": f"dermatitis{tag}"}) == [ev]
    assert found(fhir, "Encounter", {"diagnosis:Condition._text": f"dermatitis{tag}"}) == []


def test_text_follows_update_and_delete(fhir, tag):
    res = {"resourceType": "Basic", "code": {"text": f"first{tag}"}, "text": _div(f"old{tag}")}
    rid = make(fhir, res)
    assert found(fhir, "Basic", {"_text": f"old{tag}"}) == [rid]
    r = fhir.put(f"Basic/{rid}", json={**res, "id": rid, "text": _div(f"new{tag}"), "code": {"text": f"second{tag}"}},
                 headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert found(fhir, "Basic", {"_text": f"old{tag}"}) == []
    assert found(fhir, "Basic", {"_text": f"new{tag}"}) == [rid]
    assert found(fhir, "Basic", {"_content": f"first{tag}"}) == []
    assert found(fhir, "Basic", {"_content": f"second{tag}"}) == [rid]
    assert fhir.delete(f"Basic/{rid}").status_code in (200, 204)
    assert found(fhir, "Basic", {"_text": f"new{tag}"}) == []
    assert found(fhir, "Basic", {"_content": f"second{tag}"}) == []


def test_text_errors_and_capabilities(fhir):
    for name, value in (("_text", "--"), ("_content", "a,"), ("_content:exact", "a"), ("_text:missing", "true")):
        body = error(fhir, "Condition", {name: value})
        assert name in body["issue"][0]["diagnostics"]
    cs = fhir.get("metadata").json()
    res = {x["type"]: x for x in cs["rest"][0]["resource"]}
    assert {"_text", "_content"} <= {p["name"] for p in res["Condition"]["searchParam"]}
    assert "_content" in {p["name"] for p in res["Bundle"]["searchParam"]}
