"""The stand-in's settings: one typed `BaseSettings`, every variable prefixed `STANDIN_`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STANDIN_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=1, le=65535)
    # Enables /admin/faults (fault injection for the team's fault tests); 404 when off.
    enable_faults: bool = False
    # Minimum fuzzy score (0-100) for the demo brain to answer with an FAQ's answer.
    match_threshold: float = Field(default=70.0, ge=0, le=100)
    # Speech recognition engine: Whisper tiny.en (open vocabulary, the FAQ prompt only a light
    # bias) or pocketsphinx (the prompt becomes its language model: hears FAQ words only).
    recogniser: Literal["whisper", "pocketsphinx"] = "whisper"
    # Concurrent recognitions (Whisper decodes, or pocketsphinx decoders) and syntheses (espeak).
    stt_concurrency: int = Field(default=2, ge=1, le=16)
    tts_concurrency: int = Field(default=4, ge=1, le=32)
    # The recognisers hear only English; for another `language` return "" or the English attempt.
    stt_non_english: Literal["empty", "english"] = "empty"
    # Largest accepted upload for /v1/audio/transcriptions (OpenAI's limit is 25 MB).
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
