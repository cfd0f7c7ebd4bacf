"""Full-text rows of ``_text`` / ``_content`` (``fhir_server.indexing.text``) and their match rule."""

from __future__ import annotations

from fhir_server.indexing import SearchParamRegistry, extract_rows
from fhir_server.indexing.text import MAX_CONTENT, narrative_text, query_words, text_match, text_rows


def _div(html: str) -> dict:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html}</div>'}


def test_narrative_and_content_rows() -> None:
    res = {"resourceType": "Condition", "id": "c1", "meta": {"versionId": "1", "source": "urn:src"},
           "text": _div("<p>Zoë has a <b>high</b> fever&nbsp;&amp; cough.</p><!-- hidden --><br/>Fever again"),
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "386661006", "display": "Fever"}]},
           "onsetDateTime": "2024-01-02T10:00:00Z", "recordedDate": "2024-01-03",
           "subject": {"reference": "Patient/p1", "display": "Zoë Smith"},
           "note": [{"text": "Follow-up in 2 weeks", "authorString": "Dr. Ångström"}],
           "evidence": [{"detail": [{"reference": "Observation/o1"}]}]}
    assert text_rows(res) == [
        ("_text", "zoe has a high fever cough again"),
        ("_content", "386661006 fever zoe smith follow up in 2 weeks dr angstrom has a high cough again")]


def test_skipped_values_and_odd_content() -> None:
    res = {"resourceType": "DocumentReference", "status": "current",
           "content": [{"attachment": {"contentType": "text/plain", "data": "SGVsbG8gd29ybGQ=",
                                       "url": "http://x/doc", "title": "Discharge_summary"}}],
           "extension": [{"url": "http://ext", "valueString": "urn:uuid:1234", "valueInteger": 5}],
           "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"}],
           "text": {"status": "empty"}}
    assert text_rows(res) == [("_content", "current text plain discharge summary")]
    assert text_rows({"resourceType": "Basic", "text": {"div": "<div><br/></div>"}}) == []
    assert text_rows({"resourceType": "Basic", "text": "odd", "code": [1, None, True, {"a": ["b"]}]}) == [
        ("_content", "b")]


def test_content_is_distinct_words_capped() -> None:
    words = [f"w{i:05d}" for i in range(2000)]
    res = {"resourceType": "Basic", "code": {"text": " ".join(words + words)}, "note": "x" * 150}
    ((param, content),) = text_rows(res)
    assert param == "_content" and len(content) <= MAX_CONTENT
    assert content.split() == words[:len(content.split())] and len(content) > MAX_CONTENT - 7


def test_extract_rows_adds_text_for_known_types_only() -> None:
    reg = SearchParamRegistry.default()
    out = extract_rows(reg, {"resourceType": "Task", "status": "draft", "description": "Call back"})
    assert out["text"] == [("_content", "draft call back")]
    assert ("status", None, "draft", None) in out["token"]
    assert extract_rows(reg, {"resourceType": "NotAType", "description": "x"}) == {}


def test_query_words_and_match_rule() -> None:
    assert query_words("Émile  SMITH-jones, émile") == ["emile", "smith", "jones"]
    assert query_words("--") == []
    assert narrative_text("<p>a&lt;b</p>") == " a<b "
    assert text_match("zoe has a high fever", "fev hi")
    assert text_match("zoe has a high fever", "zoe")
    assert not text_match("zoe has a high fever", "ever")  # not the start of a word
    assert not text_match("zoe has a high fever", "fever cough")
    assert not text_match(None, "a") and not text_match("a", "")
