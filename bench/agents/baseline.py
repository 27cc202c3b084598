"""The baseline for `bench.voice_turn`: the framework's plain default voice pipeline.

`python -m bench.agents baseline start`. An `AgentServer` with a prewarmed Silero VAD and one
`AgentSession` with the same OpenAI plugins pointed at the same stand-in, the same local turn
detector and turn handling, greeting with the same line. What it does NOT have is what we add
in `agent/`: no state RPC, no metadata parsing (the benchmark's fixed FAQs are baked in), no RPC
methods, no lifecycle behaviours. Timing capture is the same as `bench.agents.ours`.
"""

from __future__ import annotations

import logging

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    inference,
)
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import openai, silero
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.settings import Settings as AgentSettings
from agent.settings import load_settings as load_agent_settings
from bench.common import FAQS
from common.prompt_data import render_faq_block

from .timing import TimingLog, attach_http_timing, attach_turn_metrics

__all__ = ["GREETING", "build_server", "entrypoint", "prewarm"]

logger = logging.getLogger(__name__)

# The worker's reported load is what livekit-server dispatches by: with the framework's default
# (whole-machine CPU), a machine busy with other work reads as full and gets no jobs.
MAX_JOBS = 50
GREETING = "Hi there! I'm your virtual assistant. What would you like to know?"
INSTRUCTIONS = (
    "You are a helpful voice assistant. Always reply in English (English).\n"
    f"Answer from these FAQs.\n{render_faq_block(FAQS)}"
)


class BaselineSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    livekit_url: str
    livekit_api_key: str
    livekit_api_secret: str
    openai_base_url: str
    agent_name: str = "baseline-agent"
    agent_http_port: int = 0
    bench_events_dir: str = ".cache/bench-events"


def _settings() -> BaselineSettings:
    return BaselineSettings()  # type: ignore[call-arg]  # from the environment


def _turn_settings() -> AgentSettings:
    """The speech settings ours runs with (same environment): recognition path and model, VAD
    silence, endpointing delays, turn detector. Only the values are shared, not our code."""
    return load_agent_settings()


class BaselineAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)

    async def on_enter(self) -> None:
        self.session.say(GREETING)


def prewarm(proc: JobProcess) -> None:
    silence = _turn_settings().agent_vad_min_silence_seconds
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=silence)


async def entrypoint(ctx: JobContext) -> None:
    settings = _settings()
    speech = _turn_settings()
    await ctx.connect()
    base_url = settings.openai_base_url
    stt = openai.STT(
        model=speech.resolved_stt_model,
        language="en",
        # The same vocabulary hint ours sends (the FAQ questions): without it the stand-in's
        # recogniser rarely catches a question, and the turns would not be comparable.
        prompt="\n".join(f.question for f in FAQS),
        use_realtime=speech.stt_realtime,
        vad=ctx.proc.userdata["vad"],
        base_url=base_url,
        api_key="standin-no-key",
    )
    llm = openai.LLM(model="gpt-4.1-mini", base_url=base_url, api_key="standin-no-key")
    tts = openai.TTS(
        model="gpt-4o-mini-tts",
        voice="alloy",
        response_format="pcm",
        base_url=base_url,
        api_key="standin-no-key",
    )
    turn_handling: TurnHandlingOptions = {
        "turn_detection": (
            inference.TurnDetector(version="v1-mini")
            if speech.agent_turn_detector == "model"
            else "vad"
        ),
        "endpointing": {
            "mode": "fixed",
            "min_delay": speech.agent_endpointing_min_delay_seconds,
            "max_delay": speech.agent_endpointing_max_delay_seconds,
        },
        "interruption": {"enabled": True, "mode": "vad"},
        "preemptive_generation": {"enabled": True},
    }
    session: AgentSession[None] = AgentSession(
        stt=stt, llm=llm, tts=tts, vad=ctx.proc.userdata["vad"], turn_handling=turn_handling
    )
    log = TimingLog.for_job(
        agent="baseline", room=ctx.room.name, events_dir=settings.bench_events_dir
    )
    for label, plugin in (("stt", stt), ("llm", llm), ("tts", tts)):
        attach_http_timing(plugin, log, label)
    attach_turn_metrics(session, log)

    async def _close_log() -> None:
        log.close()

    ctx.add_shutdown_callback(_close_log)
    await session.start(BaselineAgent(), room=ctx.room)


def _job_count_load(server: AgentServer) -> float:
    """Load as the share of job slots in use, not the machine's CPU (see `MAX_JOBS`)."""
    return min(1.0, len(server.active_jobs) / MAX_JOBS)


def build_server() -> AgentServer:
    settings = _settings()
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        host="127.0.0.1",
        port=settings.agent_http_port,
        setup_fnc=prewarm,
        num_idle_processes=1,  # as ours (AGENT_NUM_IDLE_PROCESSES default)
        # Jobs by count like ours under the devstack (AGENT_MAX_JOBS), not by machine CPU.
        load_threshold=float("inf"),
        load_fnc=_job_count_load,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server
