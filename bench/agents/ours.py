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
from agent.settings import Settings, get_settings
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


def job_count_load(server: AgentServer) -> float:
    """The worker's reported load as the share of AGENT_MAX_JOBS slots in use.

    `agent.worker` sets `load_threshold=inf` for AGENT_MAX_JOBS but keeps the framework's default
    load function (whole-machine CPU). livekit-server then stops dispatching to a worker that
    reports ~1.0 ("no servers available") whenever the shared machine is busy, which is exactly
    when a benchmark runs. Reported to the agent's owner; remove once `agent.worker` does this.
    """
    max_jobs = get_settings().agent_max_jobs or 1
    return min(1.0, len(server.active_jobs) / max_jobs)


def build_server() -> AgentServer:
    server = worker.build_server()
    # Bench-only: swap the registered entrypoint for ours (AgentServer has no public setter and
    # refuses a second `rtc_session`); agent name, on_request and options stay as built.
    server._entrypoint_fnc = timed_entrypoint
    server.load_fnc = job_count_load
    return server
