from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from common.metadata import (
    MAX_ANSWER_CHARS,
    MAX_FAQ_SET_BYTES,
    MAX_FAQS,
    MAX_METADATA_BYTES,
    Faq,
    SessionMetadata,
    clean_text,
    faq_set_bytes,
    parse_metadata_lenient,
)
from common.protocol import MAX_RPC_PAYLOAD_BYTES, SetFaqsPayload

pytestmark = pytest.mark.unit


def test_metadata_defaults_to_english_without_faqs() -> None:
    meta = SessionMetadata()
    assert meta.language == "en"
    assert meta.faqs == []


def test_metadata_normalises_language_spelling() -> None:
    assert SessionMetadata(language="es_mx").language == "es-MX"
    assert SessionMetadata(language="PT-br").language == "pt-BR"


def test_metadata_unknown_language_names_supported_ones() -> None:
    with pytest.raises(ValidationError) as err:
        SessionMetadata(language="xx")
    assert "supported: en, en-GB, es" in str(err.value)
    assert err.value.errors()[0]["loc"] == ("language",)


def test_metadata_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError) as err:
        SessionMetadata.model_validate({"language": "en", "voice": "x"})
    assert err.value.errors()[0]["loc"] == ("voice",)


def test_faq_text_is_trimmed_and_blank_is_refused() -> None:
    assert Faq(question="  Hi?  ", answer="\tYes.\n").question == "Hi?"
    with pytest.raises(ValidationError):
        Faq(question="   ", answer="x")


def test_faq_limits() -> None:
    with pytest.raises(ValidationError):
        Faq(question="q", answer="a" * (MAX_ANSWER_CHARS + 1))
    faqs = [{"question": f"q{i}", "answer": "a"} for i in range(MAX_FAQS + 1)]
    with pytest.raises(ValidationError) as err:
        SessionMetadata.model_validate({"faqs": faqs})
    assert err.value.errors()[0]["loc"] == ("faqs",)


def test_metadata_total_size_is_bounded() -> None:
    faqs = [{"question": "q" * 300, "answer": "é" * 1500} for _ in range(10)]
    with pytest.raises(ValidationError) as err:
        SessionMetadata.model_validate({"faqs": faqs})
    assert f"at most {MAX_FAQ_SET_BYTES}" in str(err.value)


def _faq_set_of_size(size: int) -> list[Faq]:
    """FAQs whose compact JSON is exactly `size` bytes."""
    faqs = [Faq(question="q" * 300, answer="a" * 1500) for _ in range(8)]
    rest = size - faq_set_bytes(faqs) - len(',{"question":"q","answer":""}')
    return [*faqs, Faq(question="q", answer="a" * rest)]


def test_one_faq_size_rule_for_token_metadata_and_set_faqs() -> None:
    largest = _faq_set_of_size(MAX_FAQ_SET_BYTES)
    assert faq_set_bytes(largest) == MAX_FAQ_SET_BYTES
    metadata = SessionMetadata(language="pt-BR", faqs=largest)
    assert len(metadata.to_json().encode()) <= MAX_METADATA_BYTES
    payload = SetFaqsPayload(faqs=largest).model_dump_json()
    assert len(payload.encode()) <= MAX_RPC_PAYLOAD_BYTES
    assert SetFaqsPayload.model_validate_json(payload).faqs == largest
    too_big = [f.model_dump() for f in _faq_set_of_size(MAX_FAQ_SET_BYTES + 1)]
    with pytest.raises(ValidationError):
        SessionMetadata.model_validate({"faqs": too_big})
    with pytest.raises(ValidationError):
        SetFaqsPayload.model_validate({"faqs": too_big})


def test_clean_text_drops_control_characters_but_keeps_newlines() -> None:
    assert clean_text("a\x00b\x1bc\nd\te\r\nf") == "abc\nd\te\nf"


@given(st.text(max_size=200))
def test_clean_text_never_leaves_controls(value: str) -> None:
    cleaned = clean_text(value)
    assert all(ch in "\n\t" or ord(ch) >= 0x20 for ch in cleaned if ord(ch) < 0x7F or ch < " ")
    assert cleaned == cleaned.strip()


def test_lenient_parse_of_valid_metadata_has_no_problems() -> None:
    raw = json.dumps({"language": "es", "faqs": [{"question": "¿Hora?", "answer": "A las 9."}]})
    meta, problems = parse_metadata_lenient(raw)
    assert (meta.language, len(meta.faqs), problems) == ("es", 1, [])


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "empty"),
        ("", "empty"),
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON list"),
        ("x" * 70000, "ignored"),
        ("[" * 20000 + "]" * 20000, "nested too deeply"),
    ],
)
def test_lenient_parse_falls_back_to_defaults(raw: str | None, problem: str) -> None:
    meta, problems = parse_metadata_lenient(raw)
    assert meta == SessionMetadata()
    assert problem in problems[0]


def test_lenient_parse_keeps_the_valid_field() -> None:
    raw = json.dumps({"language": "klingon", "faqs": [{"question": "Q?", "answer": "A."}]})
    meta, problems = parse_metadata_lenient(raw)
    assert meta.language == "en"
    assert meta.faqs == [Faq(question="Q?", answer="A.")]
    assert "language" in problems[0]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_lenient_parse_never_raises(data: object) -> None:
    meta, _ = parse_metadata_lenient(json.dumps(data))
    assert isinstance(meta, SessionMetadata)


def test_problem_descriptions_escape_caller_chosen_keys() -> None:
    raw = json.dumps({"language": "en", "x\nFORGED 2026 ERROR\x00": 1})
    _, problems = parse_metadata_lenient(raw)
    assert "\n" not in problems[0]
    assert "\x00" not in problems[0]
    assert "x\\nFORGED" in problems[0]
