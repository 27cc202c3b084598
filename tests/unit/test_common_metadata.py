from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.metadata import (
    MAX_ANSWER_CHARS,
    MAX_FAQS,
    MAX_METADATA_BYTES,
    Faq,
    SessionMetadata,
    clean_text,
    parse_metadata_lenient,
)

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
    assert f"at most {MAX_METADATA_BYTES}" in str(err.value)


def test_clean_text_drops_control_characters_but_keeps_newlines() -> None:
    assert clean_text("a\x00b\x1bc\nd\te\r\nf") == "abc\nd\te\nf"


# Every C0 control, DEL and every C1 control: the cases a lenient `clean_text` would miss.
CONTROLS = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))]
texts_with_controls = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(CONTROLS)), max_size=200
)


def _is_forbidden(ch: str) -> bool:
    return ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cs")


@given(texts_with_controls)
def test_clean_text_never_leaves_controls(value: str) -> None:
    event("has controls" if any(_is_forbidden(ch) for ch in value) else "no controls")
    cleaned = clean_text(value)
    assert not any(_is_forbidden(ch) for ch in cleaned)
    assert cleaned == cleaned.strip()


@pytest.mark.parametrize("control", ["\x7f", "\x85", "\x9f", "\x00", "\x1b"])
def test_clean_text_drops_del_and_c1_controls(control: str) -> None:
    assert clean_text(f"a{control}b") == "ab"


def test_control_strategy_reaches_del_and_c1() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, database=None)
    @given(texts_with_controls)
    def probe(value: str) -> None:
        seen.update(ch for ch in value if _is_forbidden(ch))

    probe()
    assert any(0x7F <= ord(ch) < 0xA0 for ch in seen), "no DEL/C1 control was ever generated"


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


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    max_leaves=30,
)
_words = st.text(alphabet="abc xyz?é", min_size=1, max_size=30)
_faq_like = st.fixed_dictionaries(
    {"question": st.one_of(_words, _json_values), "answer": st.one_of(_words, _json_values)},
    optional={"extra": _json_values},
)
# Metadata-shaped objects: the `language` and `faqs` keys with values valid or a flaw away.
_metadata_like = st.fixed_dictionaries(
    {},
    optional={
        "language": st.one_of(st.sampled_from(["en", "es", "FR", "xx", ""]), _json_values),
        "faqs": st.one_of(
            st.lists(st.fixed_dictionaries({"question": _words, "answer": _words}), max_size=3),
            st.lists(st.one_of(_faq_like, _json_values), max_size=4),
            _json_values,
        ),
        "extra": _json_values,
    },
)


@given(st.one_of(_json_values, _metadata_like))
def test_lenient_parse_never_raises(data: object) -> None:
    if isinstance(data, dict):
        event(f"keys: {sorted(k for k in data if k in ('language', 'faqs'))}")
    meta, _ = parse_metadata_lenient(json.dumps(data))
    assert isinstance(meta, SessionMetadata)


def test_lenient_parse_strategy_reaches_language_and_faqs() -> None:
    seen = {"language": 0, "faqs": 0, "valid faq": 0}

    @settings(max_examples=300, database=None)
    @given(st.one_of(_json_values, _metadata_like))
    def probe(data: object) -> None:
        if not isinstance(data, dict):
            return
        seen["language"] += "language" in data
        seen["faqs"] += "faqs" in data
        meta, _ = parse_metadata_lenient(json.dumps(data))
        seen["valid faq"] += bool(meta.faqs)

    probe()
    assert min(seen.values()) >= 10, seen


def test_problem_descriptions_escape_caller_chosen_keys() -> None:
    raw = json.dumps({"language": "en", "x\nFORGED 2026 ERROR\x00": 1})
    _, problems = parse_metadata_lenient(raw)
    assert "\n" not in problems[0]
    assert "\x00" not in problems[0]
    assert "x\\nFORGED" in problems[0]
