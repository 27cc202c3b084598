"""Our agent (`agent.worker`, unchanged) plus per-turn timing capture, for `bench.voice_turn`.

Run with `python -m bench.agents ours start`. The only difference from `python -m agent start`
is a wrapper around `build_session` (the seam in `agent.worker` where the session is made) that
attaches `bench.agents.timing` to the session and its provider clients; the entrypoint, the state
RPC, metadata handling and RPC methods all run as in production.

Job processes unpickle the entrypoint by module name, so the wrapper must be installed by
importing this module there: `build_server` registers `timed_entrypoint` (defined here) in place
of `agent.worker.entrypoint`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence

from livekit.agents import AgentServer, AgentSession, JobContext, get_job_context, vad
from pydantic_settings import BaseSettings, SettingsConfigDict

import agent.worker as worker
from agent.pipeline import OpenAIPipeline
from agent.settings import Settings
from common.languages import Language
from common.metadata import Faq

from .timing import TimingLog, attach_http_timing, attach_turn_metrics

__all__ = ["build_server", "build_timed_session", "timed_entrypoint"]

logger = logging.getLogger(__name__)

_real_build_session = worker.build_session  # type: ignore[attr-defined]


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    bench_events_dir: str = ".cache/bench-events"


async def build_timed_session(
    settings: Settings, language: Language, faqs: Sequence[Faq], vad_model: vad.VAD
) -> tuple[AgentSession[None], OpenAIPipeline]:
    session, pipeline = await _real_build_session(settings, language, faqs, vad_model)
    ctx = get_job_context()
    log = TimingLog.for_job(
        agent="ours", room=ctx.room.name, events_dir=BenchSettings().bench_events_dir
    )
    for label, plugin in (("stt", pipeline.stt), ("llm", pipeline.llm), ("tts", pipeline.tts)):
        attach_http_timing(plugin, log, label)
    attach_turn_metrics(session, log)
    ctx.add_shutdown_callback(_closer(log))
    return session, pipeline


def _closer(log: TimingLog) -> Callable[[], Coroutine[None, None, None]]:
    async def close() -> None:
        log.close()

    return close


async def timed_entrypoint(ctx: JobContext) -> None:
    await worker.entrypoint(ctx)


# Installed on import, in the worker and in every job process (which imports this module to
# unpickle `timed_entrypoint`).
worker.build_session = build_timed_session  # type: ignore[attr-defined]


def build_server() -> AgentServer:
    # The real worker (options, AGENT_MAX_JOBS load and guard, agent name), timed entrypoint.
    return worker.build_server(session_entrypoint=timed_entrypoint)
