"""The voice pipeline of one session: OpenAI(-compatible) STT, LLM and TTS, Silero VAD, turn
detection, interruptions, all configured for one language and retunable mid-session.

Everything here stays on the configured provider endpoint and loopback: the local turn detector
(`turn-detector-v1-mini`, shipped in `livekit-local-inference`) and VAD-based interruption are
chosen explicitly, because the framework's defaults in dev mode call LiveKit's cloud inference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from livekit.agents import NOT_GIVEN, AgentSession, APIConnectOptions, NotGivenOr, inference, vad
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import EndpointingOptions, TurnDetectionMode, TurnHandlingOptions
from livekit.plugins import openai

from common.languages import Language
from common.metadata import Faq

from .lifecycle import MAX_UNRECOVERABLE_ERRORS
from .prompts import render_tts_instructions
from .settings import Settings

__all__ = [
    "OpenAIPipeline",
    "build_session",
    "build_turn_detector",
    "endpointing_options",
    "provider_connect_options",
    "stt_vocabulary_hint",
]

logger = logging.getLogger(__name__)

# Provider calls: fail fast enough that a hung provider becomes a fallback line, not silence.
_PROVIDER_MAX_RETRY = 2
_PROVIDER_RETRY_INTERVAL = 0.5
# Transcription prompts are short context, not documents; OpenAI reads only their tail.
_MAX_HINT_CHARS = 2000


def stt_vocabulary_hint(faqs: Sequence[Faq]) -> str:
    """The FAQ questions, one per line, as the STT `prompt`: the words users are likely to say.

    OpenAI's transcription models use it as context; the offline stand-in builds a small
    language model from it (without it, its stock recogniser rarely catches a question).
    """
    lines: list[str] = []
    size = 0
    for faq in faqs:
        line = " ".join(faq.question.split())
        if size + len(line) + 1 > _MAX_HINT_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class OpenAIPipeline:
    """The provider objects of one session, kept typed so the language can be switched."""

    stt: openai.STT
    llm: openai.LLM
    tts: openai.TTS

    @classmethod
    def create(
        cls,
        settings: Settings,
        language: Language,
        faqs: Sequence[Faq] = (),
        vad_model: vad.VAD | None = None,
    ) -> OpenAIPipeline:
        base_url: NotGivenOr[str] = settings.provider_base_url or NOT_GIVEN
        api_key = settings.provider_api_key
        return cls(
            stt=openai.STT(
                model=settings.resolved_stt_model,
                language=language.stt_language,
                prompt=stt_vocabulary_hint(faqs),
                use_realtime=settings.stt_realtime,
                # Realtime-only models have no server endpointing: the plugin commits each
                # utterance when this VAD hears it end. The session's own (prewarmed) model,
                # so both agree on where speech ends; unset, the plugin would load a second.
                vad=vad_model if vad_model is not None else NOT_GIVEN,
                base_url=base_url,
                api_key=api_key,
            ),
            llm=openai.LLM(model=settings.llm_model, base_url=base_url, api_key=api_key),
            tts=openai.TTS(
                model=settings.tts_model,
                voice=language.tts_voice,
                instructions=render_tts_instructions(language),
                response_format="pcm",
                base_url=base_url,
                api_key=api_key,
            ),
        )

    def apply_faqs(self, faqs: Sequence[Faq]) -> None:
        self.stt.update_options(prompt=stt_vocabulary_hint(faqs))

    def apply_language(self, language: Language) -> None:
        self.stt.update_options(language=language.stt_language)
        self.tts.update_options(
            voice=language.tts_voice, instructions=render_tts_instructions(language)
        )


def provider_connect_options(settings: Settings) -> APIConnectOptions:
    """Retries and per-attempt timeout of every STT, LLM and TTS call."""
    return APIConnectOptions(
        max_retry=_PROVIDER_MAX_RETRY,
        retry_interval=_PROVIDER_RETRY_INTERVAL,
        timeout=settings.agent_provider_timeout_seconds,
    )


def build_turn_detector(settings: Settings) -> TurnDetectionMode:
    """The local audio end-of-turn model, or VAD when asked for or when it cannot load."""
    if settings.agent_turn_detector == "vad":
        return "vad"
    try:
        return inference.TurnDetector(version="v1-mini")
    except Exception as exc:
        logger.warning("local turn detector unavailable (%s); using VAD turn detection", exc)
        return "vad"


def endpointing_options(settings: Settings) -> EndpointingOptions:
    """How long the agent waits after speech ends: min when the turn looks complete, else max."""
    return {
        "mode": "fixed",
        "min_delay": settings.agent_endpointing_min_delay_seconds,
        "max_delay": settings.agent_endpointing_max_delay_seconds,
    }


async def build_session(
    settings: Settings, language: Language, faqs: Sequence[Faq], vad_model: vad.VAD
) -> tuple[AgentSession[None], OpenAIPipeline]:
    # The HTTP clients build TLS contexts (~0.3 s of blocking work): off the job's event loop.
    pipeline = await asyncio.to_thread(OpenAIPipeline.create, settings, language, faqs, vad_model)
    provider_conn = provider_connect_options(settings)
    turn_handling: TurnHandlingOptions = {
        "turn_detection": build_turn_detector(settings),
        "endpointing": endpointing_options(settings),
        "interruption": {"enabled": True, "mode": "vad"},
        "preemptive_generation": {"enabled": True},
    }
    session: AgentSession[None] = AgentSession(
        stt=pipeline.stt,
        llm=pipeline.llm,
        tts=pipeline.tts,
        vad=vad_model,
        turn_handling=turn_handling,
        user_away_timeout=settings.agent_idle_timeout_seconds,
        # Given explicitly (None = off), so the framework does not re-decide it per participant.
        aec_warmup_duration=settings.agent_aec_warmup_seconds or None,
        conn_options=SessionConnectOptions(
            stt_conn_options=provider_conn,
            llm_conn_options=provider_conn,
            tts_conn_options=provider_conn,
            max_unrecoverable_errors=MAX_UNRECOVERABLE_ERRORS,
        ),
    )
    return session, pipeline
