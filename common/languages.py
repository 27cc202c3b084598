"""The supported session languages: one frozen table, read by the token server and the agent."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "Language",
    "UnsupportedLanguageError",
    "get_language",
    "normalize_language_code",
    "supported_codes",
]


@dataclass(frozen=True, slots=True)
class Language:
    """Everything the pipeline needs to speak one language.

    `code` is the BCP-47 tag the frontend sends; `stt_language` the ISO-639-1 code the
    speech-to-text API takes; `tts_voice` an OpenAI voice name; `prompt` names the per-language
    text file under `prompts/languages/`; `espeak_voice` is the espeak-ng voice that the offline
    stand-in speaks with and the simulated user renders questions in.
    """

    code: str
    english_name: str
    native_name: str
    stt_language: str
    tts_voice: str
    prompt: str
    espeak_voice: str


LANGUAGES: tuple[Language, ...] = (
    # espeak-ng's plain "en" is British: US English matches the recogniser's en-US model.
    Language("en", "English", "English", "en", "alloy", "en", "en-us"),
    Language("en-GB", "British English", "English (UK)", "en", "fable", "en", "en-gb"),
    Language("es", "Spanish", "Español", "es", "nova", "es", "es"),
    Language("es-MX", "Mexican Spanish", "Español (México)", "es", "shimmer", "es", "es-419"),
    Language("fr", "French", "Français", "fr", "echo", "fr", "fr-fr"),
    Language("de", "German", "Deutsch", "de", "onyx", "de", "de"),
    Language("it", "Italian", "Italiano", "it", "sage", "it", "it"),
    Language("pt-BR", "Brazilian Portuguese", "Português (Brasil)", "pt", "coral", "pt", "pt-br"),
)

DEFAULT_LANGUAGE = "en"

_BY_KEY: dict[str, Language] = {lang.code.lower(): lang for lang in LANGUAGES}


class UnsupportedLanguageError(ValueError):
    """Raised for a language code that is not in the table."""

    def __init__(self, code: str) -> None:
        super().__init__(
            f"unsupported language {code!r}; supported: {', '.join(supported_codes())}"
        )
        self.code = code


def supported_codes() -> list[str]:
    return [lang.code for lang in LANGUAGES]


def normalize_language_code(code: str) -> str:
    """Return the canonical spelling of a supported code ('es_mx' -> 'es-MX') or raise."""
    key = code.strip().replace("_", "-").lower()
    lang = _BY_KEY.get(key)
    if lang is None:
        raise UnsupportedLanguageError(code)
    return lang.code


def get_language(code: str) -> Language:
    return _BY_KEY[normalize_language_code(code).lower()]
