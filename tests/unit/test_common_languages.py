from __future__ import annotations

import pytest

from common.languages import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    UnsupportedLanguageError,
    get_language,
    normalize_language_code,
    supported_codes,
)

pytestmark = pytest.mark.unit


def test_language_codes_are_unique_and_default_is_supported() -> None:
    codes = [lang.code.lower() for lang in LANGUAGES]
    assert len(codes) == len(set(codes))
    assert DEFAULT_LANGUAGE in supported_codes()


@pytest.mark.parametrize("spelling", ["es-MX", "es-mx", "ES_MX", " es-MX "])
def test_language_lookup_is_forgiving_about_spelling(spelling: str) -> None:
    assert normalize_language_code(spelling) == "es-MX"
    assert get_language(spelling).stt_language == "es"


def test_unknown_language_error_lists_supported_codes() -> None:
    with pytest.raises(UnsupportedLanguageError, match="supported: en, en-GB"):
        get_language("tlh")
