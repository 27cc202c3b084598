"""The composition root: the worker (`build_server`), its prewarm, and the session entrypoint.

The entrypoint reads as a table of contents; each behaviour lives in its own module.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import (
    AgentServer,
    JobContext,
    JobExecutorType,
    JobProcess,
    JobRequest,
    room_io,
)
from livekit.plugins import silero

from common.languages import get_language

from . import forkserver_signals
from .conversation import AvatarAgent, Conversation
from .lifecycle import (
    end_job_when_session_closes,
    end_when_idle,
    speak_fallback_on_errors,
    wait_for_rejoin,
)
from .logs import apply_log_format
from .metrics import count_state_rpcs, metrics_server_options, record_session_metrics
from .pipeline import build_session
from .prompts import preload_prompts
from .rpc import AgentRpc, register_rpc_methods
from .settings import Settings, get_settings
from .state_notifier import RetryPolicy, notify_state_changes
from .tasks import BackgroundTasks
from .user import choose_metadata, wait_for_user

__all__ = [
    "VAD_KEY",
    "audio_input_options",
    "build_server",
    "entrypoint",
    "framework_log_level",
    "gave_up_connecting",
    "prewarm",
]

logger = logging.getLogger(__name__)

VAD_KEY = "vad"


def prewarm(proc: JobProcess) -> None:
    """Once per job process, before any job: the VAD model and every prompt file."""
    silence = get_settings().agent_vad_min_silence_seconds
    proc.userdata[VAD_KEY] = silero.VAD.load(min_silence_duration=silence)
    preload_prompts()


async def entrypoint(ctx: JobContext) -> None:
    settings = get_settings()
    ctx.log_context_fields = {
        "room": ctx.room.name,
        "room_id": ctx.job.room.sid,
        "job_id": ctx.job.id,
    }
    tasks = BackgroundTasks()
    rpc = AgentRpc()

    await ctx.connect()
    unregister_rpc = register_rpc_methods(ctx.room.local_participant, rpc)

    user = await wait_for_user(ctx.room, timeout=settings.agent_user_join_timeout_seconds)
    if user is None:  # the token server made the room, and nobody used the token
        logger.warning(
            "no user joined within %.0fs; leaving", settings.agent_user_join_timeout_seconds
        )
        ctx.shutdown("no user joined")
        return
    ctx.log_context_fields["user"] = user.identity
    choice = choose_metadata(ctx.job.metadata, user.metadata)
    if choice.problems:
        logger.warning("session metadata problems (defaults used): %s", "; ".join(choice.problems))
    language = get_language(choice.metadata.language)
    faqs = choice.metadata.faqs
    logger.info(
        "session from %s metadata: language=%s faqs=%d", choice.source, language.code, len(faqs)
    )

    session, pipeline = await build_session(settings, language, faqs, ctx.proc.userdata[VAD_KEY])
    agent = AvatarAgent(language=language, faqs=faqs)
    conversation = Conversation(
        session=session, agent=agent, language=language, faqs=faqs, speech=pipeline
    )

    record_session_metrics(session, language=language.code)
    notifier = notify_state_changes(
        session,
        count_state_rpcs(ctx.room.local_participant),
        user.identity,
        policy=_retry_policy(settings),
    )
    wait_for_rejoin(
        ctx.room,
        session,
        user.identity,
        grace=settings.agent_user_rejoin_grace_seconds,
        on_rejoin=notifier.resend_current,
        tasks=tasks,
    )
    speak_fallback_on_errors(session, conversation)
    end_when_idle(session, conversation, tasks)
    end_job_when_session_closes(session, ctx.shutdown)

    async def _cleanup() -> None:
        unregister_rpc()
        await notifier.aclose()
        await tasks.aclose()

    ctx.add_shutdown_callback(_cleanup)

    await session.start(
        agent,
        room=ctx.room,
        # Linked to this identity only (a rejoin under another is not the user); the framework's
        # typed chat (`lk.chat`) is off: `send_text` is the one, rate-limited, way to type.
        room_options=room_io.RoomOptions(
            participant_identity=user.identity,
            text_input=False,
            audio_input=audio_input_options(settings),
        ),
    )
    rpc.ready(user_identity=user.identity, conversation=conversation, state=notifier)


def audio_input_options(settings: Settings) -> room_io.AudioInputOptions:
    """The user's audio as the framework takes it: its defaults, AGC as configured."""
    return room_io.AudioInputOptions(auto_gain_control=settings.agent_input_agc)


def framework_log_level(level: str) -> str:
    """Our LOG_LEVEL in the framework's spelling: it accepts WARN, not Python's WARNING (given
    WARNING, the worker refused to start)."""
    return "WARN" if level == "WARNING" else level


def _retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        budget=settings.agent_state_rpc_retry_budget_seconds,
        response_timeout=settings.agent_state_rpc_response_timeout_seconds,
    )


def _job_count_load(max_jobs: int | None) -> dict[str, Any]:
    """With AGENT_MAX_JOBS, the load the worker reports is its share of that many jobs.

    The framework's default measures the whole machine's CPU, and livekit-server stops offering
    jobs to a worker whose reported load reaches its `target_load` (0.7): on a machine shared
    with other work that refuses sessions for reasons that are not ours.
    """
    if max_jobs is None:
        return {}

    def job_share(server: AgentServer) -> float:
        return len(server.active_jobs) / max_jobs

    return {"load_fnc": job_share, "load_threshold": math.inf}


def _at_most_jobs(server: AgentServer, max_jobs: int) -> Callable[[JobRequest], Awaitable[None]]:
    async def on_request(request: JobRequest) -> None:
        if len(server.active_jobs) >= max_jobs:
            logger.warning(
                "refusing job %s: %d jobs running (AGENT_MAX_JOBS)", request.id, max_jobs
            )
            await request.reject(terminate=False)
            return
        await request.accept()

    return on_request


def _connect_retries(settings: Settings) -> int:
    """How many failed connection attempts in a row the framework tolerates before giving up.

    livekit-agents (1.8, `AgentServer._connection_task`) waits 0, 2, 4, ... seconds between
    attempts, capped at 10 s, and resets the count once connected; at the limit (default 16,
    about two minutes) it stops the worker, which then exits with status 0. Unset, we never stop.
    """
    if settings.agent_connect_max_retries is None:
        return sys.maxsize
    return settings.agent_connect_max_retries


def gave_up_connecting(server: AgentServer) -> bool:
    """The worker stopped because it could not reach livekit-server (the framework's own flag,
    the one its health endpoint reports as 503; it has no public accessor)."""
    failed: bool = server._connection_failed
    return failed


def build_server(
    settings: Settings | None = None,
    *,
    session_entrypoint: Callable[[JobContext], Awaitable[None]] = entrypoint,
) -> AgentServer:
    """The worker: explicit dispatch under AGENT_NAME, health endpoint on AGENT_HTTP_PORT."""
    settings = settings or get_settings()
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=(
            settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else None
        ),
        host=settings.agent_http_host,
        port=settings.agent_http_port,
        num_idle_processes=settings.agent_num_idle_processes,
        job_executor_type=JobExecutorType(settings.agent_job_executor),
        setup_fnc=prewarm,
        # Stop signals sent to the whole process group must reach only the worker (it drains).
        preload_modules=[forkserver_signals.__name__],
        log_level=framework_log_level(settings.log_level),
        max_retry=_connect_retries(settings),
        **metrics_server_options(settings),
        **_job_count_load(settings.agent_max_jobs),
    )
    on_request = None
    if settings.agent_max_jobs is not None:
        on_request = _at_most_jobs(server, settings.agent_max_jobs)
    elif settings.agent_load_threshold is not None:
        server.update_options(load_threshold=settings.agent_load_threshold)
    server.rtc_session(session_entrypoint, agent_name=settings.agent_name, on_request=on_request)

    @server.on("worker_started")
    def _on_started() -> None:
        apply_log_format(settings.log_format)
        logger.info("agent %r: %s", settings.agent_name, settings.describe_providers())
        limit = settings.agent_connect_max_retries
        logger.info(
            "connecting to livekit-server at %s (%s; backoff 0-10 s)",
            settings.livekit_url,
            "retrying until it answers" if limit is None else f"giving up after {limit} attempts",
        )

    return server
