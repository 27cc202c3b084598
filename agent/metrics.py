"""Prometheus metrics of the agent: sessions, turns, latencies and state RPC delivery.

The endpoint is the framework's own Prometheus server (`AgentServer(prometheus_port=...)`):
`GET /metrics` on `AGENT_METRICS_PORT` (unset: no endpoint). Sessions run in job processes, so
the worker uses prometheus_client's multiprocess mode: every process writes its samples to files
under `PROMETHEUS_MULTIPROC_DIR` and the endpoint sums them. Unless that variable is set, the
directory is a fresh one under the system temp directory (`/app` is read-only in the image),
removed when the worker exits.

Metrics (the latencies come from the framework's per-turn `ChatMessage.metrics`, which replace
its deprecated `metrics_collected` events):

- `avatar_agent_sessions_started_total{language}`, `avatar_agent_sessions_active`,
  `avatar_agent_sessions_ended_total{reason}` (the session's close reason);
- `avatar_agent_turns_total{role}`: `user` turns heard or typed, `agent` replies and lines;
- histograms in seconds: `avatar_agent_end_of_turn_delay_seconds` (end of the user's speech to
  the end-of-turn decision), `avatar_agent_transcription_delay_seconds`,
  `avatar_agent_llm_ttft_seconds`, `avatar_agent_tts_ttfb_seconds`,
  `avatar_agent_response_latency_seconds` (user stopped speaking to agent started speaking);
- `avatar_agent_state_rpc_attempts_total{outcome}`: `agent_state_changed` calls `delivered`,
  failed with a `retryable` error (the notifier tries again within its budget) or `refused`
  (a final error: that state is given up).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypedDict

from livekit import rtc
from livekit.agents import AgentSession, CloseEvent, ConversationItemAddedEvent
from livekit.agents.llm import ChatMessage
from prometheus_client import Counter, Gauge, Histogram, multiprocess

from .settings import Settings
from .state_notifier import RETRYABLE_RPC_ERRORS, RpcSender

__all__ = [
    "LATENCY_BUCKETS",
    "MULTIPROC_DIR_ENV",
    "CountingRpcSender",
    "MetricsServerOptions",
    "count_state_rpcs",
    "forget_dead_processes",
    "metrics_server_options",
    "record_session_metrics",
]

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")

SESSIONS_STARTED = Counter(
    "avatar_agent_sessions_started", "Sessions started, by session language", ["language"]
)
SESSIONS_ACTIVE = Gauge(
    "avatar_agent_sessions_active", "Sessions running now", multiprocess_mode="livesum"
)
SESSIONS_ENDED = Counter(
    "avatar_agent_sessions_ended", "Sessions ended, by close reason", ["reason"]
)
TURNS = Counter("avatar_agent_turns", "Conversation turns, by who spoke (user or agent)", ["role"])
END_OF_TURN_DELAY = Histogram(
    "avatar_agent_end_of_turn_delay_seconds",
    "End of the user's speech to the end-of-turn decision",
    buckets=LATENCY_BUCKETS,
)
TRANSCRIPTION_DELAY = Histogram(
    "avatar_agent_transcription_delay_seconds",
    "End of the user's speech to its final transcript",
    buckets=LATENCY_BUCKETS,
)
LLM_TTFT = Histogram(
    "avatar_agent_llm_ttft_seconds", "LLM time to first token", buckets=LATENCY_BUCKETS
)
TTS_TTFB = Histogram(
    "avatar_agent_tts_ttfb_seconds", "TTS time to first audio byte", buckets=LATENCY_BUCKETS
)
RESPONSE_LATENCY = Histogram(
    "avatar_agent_response_latency_seconds",
    "The user stopped speaking to the agent started speaking (end to end)",
    buckets=LATENCY_BUCKETS,
)
STATE_RPC_ATTEMPTS = Counter(
    "avatar_agent_state_rpc_attempts",
    "agent_state_changed calls to the user: delivered, retryable error, refused (given up)",
    ["outcome"],
)

# ChatMessage.metrics key -> histogram; user keys and assistant keys never overlap.
_TURN_HISTOGRAMS: dict[str, Histogram] = {
    "end_of_turn_delay": END_OF_TURN_DELAY,
    "transcription_delay": TRANSCRIPTION_DELAY,
    "llm_node_ttft": LLM_TTFT,
    "tts_node_ttfb": TTS_TTFB,
    "e2e_latency": RESPONSE_LATENCY,
}
_ROLES = {"user": "user", "assistant": "agent"}


# --- the endpoint (worker process) -----------------------------------------------------------


class MetricsServerOptions(TypedDict):
    """The `AgentServer` arguments that turn the framework's Prometheus endpoint on (or off)."""

    prometheus_port: int | None
    prometheus_multiproc_dir: str | None


def metrics_server_options(settings: Settings) -> MetricsServerOptions:
    """`AGENT_METRICS_PORT` unset: no endpoint. Set: the endpoint, in multiprocess mode.

    With no `PROMETHEUS_MULTIPROC_DIR` in the environment this creates a directory of this
    worker's own (never shared with another worker on the machine) and removes it at exit.
    """
    port = settings.agent_metrics_port
    if port is None:
        return MetricsServerOptions(prometheus_port=None, prometheus_multiproc_dir=None)
    if os.environ.get(MULTIPROC_DIR_ENV):
        # The framework reads it from the environment itself.
        return MetricsServerOptions(prometheus_port=port, prometheus_multiproc_dir=None)
    directory = Path(tempfile.mkdtemp(prefix=f"avatar-agent-metrics-{os.getpid()}-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return MetricsServerOptions(prometheus_port=port, prometheus_multiproc_dir=str(directory))


def forget_dead_processes(directory: str | None = None) -> list[int]:
    """Drop the live-gauge files of processes that no longer run (e.g. a killed job).

    `avatar_agent_sessions_active` sums the gauges of live processes only, but a process that
    was killed cannot say it died; each new session does it for them. Returns the pids dropped.
    """
    directory = directory or os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    dead: set[int] = set()
    for name in names:
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- one session (job process) ---------------------------------------------------------------


def record_session_metrics(session: AgentSession[Any], *, language: str) -> None:
    """Count this session, its turns and their latencies until it closes."""
    forget_dead_processes()
    SESSIONS_STARTED.labels(language=language).inc()
    SESSIONS_ACTIVE.inc()
    ended = False

    def _on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, ChatMessage) or item.role not in _ROLES:
            return
        TURNS.labels(role=_ROLES[item.role]).inc()
        # A TypedDict read key by key: absent keys are stages this turn did not have.
        report: dict[str, Any] = dict(item.metrics)
        for key, histogram in _TURN_HISTOGRAMS.items():
            value = report.get(key)
            if isinstance(value, int | float) and value >= 0:
                histogram.observe(value)

    def _on_close(ev: CloseEvent) -> None:
        nonlocal ended
        if ended:
            return
        ended = True
        SESSIONS_ENDED.labels(reason=ev.reason.value).inc()
        SESSIONS_ACTIVE.dec()

    session.on("conversation_item_added", _on_item)
    session.on("close", _on_close)


# --- agent_state_changed delivery ------------------------------------------------------------


class CountingRpcSender:
    """An `RpcSender` that counts the outcome of every call it passes on."""

    def __init__(self, sender: RpcSender) -> None:
        self._sender = sender

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        try:
            response = await self._sender.perform_rpc(
                destination_identity=destination_identity,
                method=method,
                payload=payload,
                response_timeout=response_timeout,
            )
        except rtc.RpcError as exc:
            outcome = "retryable" if exc.code in RETRYABLE_RPC_ERRORS else "refused"
            STATE_RPC_ATTEMPTS.labels(outcome=outcome).inc()
            raise
        STATE_RPC_ATTEMPTS.labels(outcome="delivered").inc()
        return response


def count_state_rpcs(sender: RpcSender) -> CountingRpcSender:
    return CountingRpcSender(sender)
