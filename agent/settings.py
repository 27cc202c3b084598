"""Agent worker configuration: one typed `BaseSettings` read from the environment and `.env`.

The names are the ones in `.env.example`. The providers are named, never guessed: a key means
OpenAI, a base URL any OpenAI-compatible server (the dev stack and the tests point it at the
offline stand-in). With neither, `python -m agent start|dev|console` refuses to start
(`missing_provider`): a worker without providers would answer every user with the fallback line.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings

from common.validation import DOTENV_SETTINGS, describe_settings_error

__all__ = [
    "PLACEHOLDER_API_KEY",
    "REALTIME_STT_MODEL",
    "UPLOAD_STT_MODEL",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
]

logger = logging.getLogger(__name__)

# Sent to a base URL given without a key (the stand-in ignores it): the OpenAI client refuses
# to start with none.
PLACEHOLDER_API_KEY = "no-key"
# OpenAI's streaming transcription model (realtime API only, client-committed: no server VAD)
# and the default of the upload path.
REALTIME_STT_MODEL = "gpt-realtime-whisper"
UPLOAD_STT_MODEL = "gpt-4o-mini-transcribe"
# Models OpenAI serves only on the realtime path (the plugin's list).
REALTIME_ONLY_STT_MODELS = ("gpt-realtime-whisper", "gpt-live-transcribe")


class SettingsError(RuntimeError):
    """The environment does not describe a usable agent; the message says what to fix."""


class Settings(BaseSettings):
    model_config = DOTENV_SETTINGS

    # The worker itself (the SDK reads LIVEKIT_URL / KEY / SECRET; they are passed explicitly).
    livekit_url: str = Field(default="ws://127.0.0.1:7880", min_length=1)
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    agent_name: str = Field(default="avatar-agent", min_length=1, max_length=128)
    agent_http_host: str = "127.0.0.1"
    agent_http_port: int = Field(default=8081, ge=0, le=65535)
    # Set: Prometheus `/metrics` on this port (same host); unset: no metrics endpoint.
    agent_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    agent_num_idle_processes: int = Field(default=1, ge=0, le=64)
    # How each session (job) runs: `process` (the framework's default: one process per session,
    # isolated, ~75 MiB PSS each) or `thread` (all sessions in the worker's one process: less
    # memory, but they share one interpreter and one core; see docs/capacity.md).
    agent_job_executor: Literal["process", "thread"] = "process"
    # CPU load (0-1) above which the worker takes no new jobs; unset: the framework's default
    # (0.7 under `start`, unlimited under `dev`). Raise it on small shared machines.
    agent_load_threshold: float | None = Field(default=None, gt=0, lt=1)
    # Set: the worker takes at most this many concurrent jobs, whatever the CPU load (wins over
    # AGENT_LOAD_THRESHOLD). For machines shared with other work, and for capacity tests.
    agent_max_jobs: int | None = Field(default=None, ge=1, le=1000)
    # Unset: the worker keeps trying to reach livekit-server for as long as it runs (a worker
    # started before its server, or a server restarted, comes back by itself). Set: it gives up
    # after this many failed attempts in a row and exits non-zero, for a supervisor to act on.
    agent_connect_max_retries: int | None = Field(default=None, ge=0, le=1_000_000)

    # Providers (OpenAI or any OpenAI-compatible endpoint).
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = Field(default="gpt-4.1-mini", min_length=1)
    # Unset: `gpt-realtime-whisper` on the realtime (streaming) path, `gpt-4o-mini-transcribe`
    # on the upload-per-utterance path (STT_REALTIME=false).
    stt_model: str | None = Field(default=None, min_length=1)
    # Streaming recognition over the realtime WebSocket: text while the user speaks, the final
    # ready when they stop. False: the whole utterance is uploaded after they stop.
    stt_realtime: bool = True
    tts_model: str = Field(default="gpt-4o-mini-tts", min_length=1)
    # Per-attempt time limit of a provider call (the LLM's whole stream; the connect phase of
    # STT and TTS, whose read limit the plugin fixes at 30 s). Each call is tried 3 times, so a
    # hung LLM becomes the fallback line after about 3x this.
    agent_provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # Session lifecycle. The token server creates the room and the agent joins at once: if no
    # user has joined after this many seconds, the agent leaves (and the room closes).
    agent_user_join_timeout_seconds: float = Field(default=60.0, gt=0)

    # End of turn (chosen with bench/eot_sweep.py, see docs/latency.md). The VAD calls speech
    # over after this much silence; the endpointing delays count from when speech ended, the
    # minimum when the turn looks complete (always, with `vad`), the maximum when the end-of-turn
    # model thinks it is not. Chosen: silence alone, 0.8 s: no cut-off in mid-sentence pauses of
    # up to 700 ms; the audio model could not tell those pauses from ends on our test voices.
    agent_vad_min_silence_seconds: float = Field(default=0.3, ge=0.05, le=3.0)
    agent_endpointing_min_delay_seconds: float = Field(default=0.8, ge=0, le=10.0)
    agent_endpointing_max_delay_seconds: float = Field(default=1.5, ge=0, le=10.0)
    # `model`: the local end-of-turn model (turn-detector v1-mini); `vad`: silence alone.
    agent_turn_detector: Literal["model", "vad"] = "vad"

    # Seconds after the agent first starts speaking during which the user's audio is neither
    # transcribed nor allowed to interrupt (the framework's guard while a browser's echo
    # cancellation settles). 0 turns it off; see docs/greeting.md for the trade-off.
    agent_aec_warmup_seconds: float = Field(default=0.0, ge=0, le=10)
    # The framework's automatic gain control (WebRTC APM) on the user's audio, every frame. Browsers
    # already apply AGC to the microphone (getUserMedia's default); off saves that per-frame
    # work in each session (docs/capacity.md). Keep it on for clients that send raw levels.
    agent_input_agc: bool = True

    agent_idle_timeout_seconds: float = Field(default=120.0, gt=0)
    agent_user_rejoin_grace_seconds: float = Field(default=20.0, ge=0)

    # agent_state_changed delivery to the page.
    agent_state_rpc_retry_budget_seconds: float = Field(default=15.0, gt=0)
    agent_state_rpc_response_timeout_seconds: float = Field(default=5.0, gt=0)

    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _normalise_case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("agent_metrics_port")
    @classmethod
    def _metrics_port_of_its_own(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("agent_http_port"):
            raise ValueError("must differ from AGENT_HTTP_PORT (the health endpoint's port)")
        return value

    @field_validator("agent_endpointing_max_delay_seconds")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("agent_endpointing_min_delay_seconds")
        if low is not None and value < low:
            raise ValueError("must be at least AGENT_ENDPOINTING_MIN_DELAY_SECONDS")
        return value

    @model_validator(mode="after")
    def _model_served_on_the_chosen_path(self) -> Settings:
        if not self.stt_realtime and self.resolved_stt_model.startswith(REALTIME_ONLY_STT_MODELS):
            raise ValueError(
                f"STT_MODEL {self.resolved_stt_model} is served only over the realtime API; "
                "set STT_REALTIME=true or choose a transcriptions model"
            )
        return self

    @property
    def resolved_stt_model(self) -> str:
        if self.stt_model is not None:
            return self.stt_model
        return REALTIME_STT_MODEL if self.stt_realtime else UPLOAD_STT_MODEL

    @property
    def provider_base_url(self) -> str | None:
        """Where the OpenAI clients send requests; None means the OpenAI default."""
        return self.openai_base_url

    @property
    def provider_api_key(self) -> str:
        if self.openai_api_key is not None:
            return self.openai_api_key.get_secret_value()
        return PLACEHOLDER_API_KEY

    def missing_provider(self) -> str | None:
        """Why this worker cannot serve users (no provider named), or None when it can."""
        if self.openai_api_key is None and self.openai_base_url is None:
            return (
                "no speech/LLM provider configured: set OPENAI_API_KEY (OpenAI) or "
                "OPENAI_BASE_URL (an OpenAI-compatible server, e.g. the offline stand-in "
                "`python -m standin` at http://127.0.0.1:8787/v1)"
            )
        return None

    def describe_providers(self) -> str:
        """One log line naming where the providers are (never the key)."""
        where = self.openai_base_url or "OpenAI"
        key = "set" if self.openai_api_key is not None else "not set (dummy key sent)"
        return (
            f"providers at {where} (API key {key}); llm={self.llm_model} "
            f"stt={self.resolved_stt_model} (realtime {self.stt_realtime}) tts={self.tts_model}"
        )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising `SettingsError` with one line per problem (values never shown)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc, "agent")) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
