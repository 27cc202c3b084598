"""agent.metrics: what a session, its turns and the state RPCs add to the Prometheus metrics.

The metrics live in the process's default registry (in-memory here: no multiprocess directory),
so each test reads the change it caused (`Delta`), whatever other tests counted before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import FaqFakeLLM
from livekit import rtc
from livekit.agents import AgentSession, CloseEvent, CloseReason, ConversationItemAddedEvent
from livekit.agents.llm import ChatMessage
from prometheus_client import REGISTRY

from agent.conversation import AvatarAgent
from agent.metrics import (
    MULTIPROC_DIR_ENV,
    count_state_rpcs,
    forget_dead_processes,
    metrics_server_options,
    record_session_metrics,
)
from agent.settings import SettingsError, load_settings
from common.languages import get_language
from devstack.sample_faqs import HOURS

pytestmark = pytest.mark.unit

FAQS = [HOURS]


class Delta:
    """Sample values relative to when the object was made."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self._start = {self._key(n, lb): self._value(n, lb) for n, lb in samples}

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> str:
        return name + repr(sorted(labels.items()))

    @staticmethod
    def _value(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def __call__(self, name: str, **labels: str) -> float:
        return self._value(name, labels) - self._start[self._key(name, labels)]


def _turn_samples() -> list[tuple[str, dict[str, str]]]:
    names = [
        "avatar_agent_end_of_turn_delay_seconds_count",
        "avatar_agent_transcription_delay_seconds_count",
        "avatar_agent_llm_ttft_seconds_count",
        "avatar_agent_tts_ttfb_seconds_count",
        "avatar_agent_response_latency_seconds_count",
        "avatar_agent_response_latency_seconds_sum",
    ]
    return [
        ("avatar_agent_turns_total", {"role": "user"}),
        ("avatar_agent_turns_total", {"role": "agent"}),
        *((n, {}) for n in names),
    ]


def _message(role: str, **metrics: Any) -> ConversationItemAddedEvent:
    item = ChatMessage(role=role, content=["text"])  # type: ignore[arg-type]
    item.metrics.update(metrics)  # type: ignore[typeddict-item]
    return ConversationItemAddedEvent(item=item)


async def test_a_text_session_counts_start_turns_llm_latency_and_end() -> None:
    delta = Delta(
        ("avatar_agent_sessions_started_total", {"language": "en-GB"}),
        ("avatar_agent_sessions_active", {}),
        ("avatar_agent_sessions_ended_total", {"reason": "user_initiated"}),
        *_turn_samples(),
    )
    session: AgentSession[None] = AgentSession(llm=FaqFakeLLM())
    record_session_metrics(session, language="en-GB")
    assert delta("avatar_agent_sessions_started_total", language="en-GB") == 1
    assert delta("avatar_agent_sessions_active") == 1
    async with session:
        await session.start(AvatarAgent(language=get_language("en"), faqs=FAQS))
        await session.run(user_input="What are your opening hours?")
    # greeting + answer from the agent, the typed question from the user
    assert delta("avatar_agent_turns_total", role="agent") == 2
    assert delta("avatar_agent_turns_total", role="user") == 1
    assert delta("avatar_agent_llm_ttft_seconds_count") == 1
    # typed text has no speech: no end-of-turn or end-to-end sample
    assert delta("avatar_agent_end_of_turn_delay_seconds_count") == 0
    assert delta("avatar_agent_response_latency_seconds_count") == 0
    assert delta("avatar_agent_sessions_ended_total", reason="user_initiated") == 1
    assert delta("avatar_agent_sessions_active") == 0


def test_voice_turn_latencies_go_to_their_histograms() -> None:
    delta = Delta(*_turn_samples())
    session: AgentSession[None] = AgentSession()
    record_session_metrics(session, language="en")
    session.emit(
        "conversation_item_added",
        _message("user", end_of_turn_delay=0.4, transcription_delay=0.2),
    )
    session.emit(
        "conversation_item_added",
        _message("assistant", llm_node_ttft=0.3, tts_node_ttfb=0.1, e2e_latency=1.25),
    )
    for name in _turn_samples()[2:-1]:
        assert delta(name[0]) == 1, name
    assert delta("avatar_agent_response_latency_seconds_sum") == pytest.approx(1.25)
    assert delta("avatar_agent_turns_total", role="user") == 1
    assert delta("avatar_agent_turns_total", role="agent") == 1


def test_system_items_and_unknown_or_negative_values_are_not_counted() -> None:
    delta = Delta(*_turn_samples())
    session: AgentSession[None] = AgentSession()
    record_session_metrics(session, language="en")
    session.emit("conversation_item_added", _message("system", llm_node_ttft=0.3))
    # the framework reports -1 for "no first token"
    session.emit("conversation_item_added", _message("assistant", llm_node_ttft=-1))
    assert delta("avatar_agent_turns_total", role="agent") == 1
    assert delta("avatar_agent_llm_ttft_seconds_count") == 0


def test_a_session_ends_once_whatever_the_close_events() -> None:
    delta = Delta(
        ("avatar_agent_sessions_active", {}),
        ("avatar_agent_sessions_ended_total", {"reason": "participant_disconnected"}),
        ("avatar_agent_sessions_ended_total", {"reason": "error"}),
    )
    session: AgentSession[None] = AgentSession()
    record_session_metrics(session, language="en")
    session.emit("close", CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    session.emit("close", CloseEvent(reason=CloseReason.ERROR))
    assert delta("avatar_agent_sessions_ended_total", reason="participant_disconnected") == 1
    assert delta("avatar_agent_sessions_ended_total", reason="error") == 0
    assert delta("avatar_agent_sessions_active") == 0


class FakeSender:
    def __init__(self, *outcomes: int | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        self.calls.append(
            {
                "to": destination_identity,
                "method": method,
                "payload": payload,
                "timeout": response_timeout,
            }
        )
        code = self.outcomes.pop(0)
        if code is not None:
            raise rtc.RpcError(code, f"error {code}")
        return "page-ok"


async def test_state_rpc_outcomes_are_counted_and_calls_pass_through() -> None:
    outcomes = ("delivered", "retryable", "refused")
    delta = Delta(*(("avatar_agent_state_rpc_attempts_total", {"outcome": o}) for o in outcomes))
    fake = FakeSender(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, None, 400)
    sender = count_state_rpcs(fake)
    kwargs: dict[str, Any] = {
        "destination_identity": "user-1",
        "method": "agent_state_changed",
        "payload": "{}",
        "response_timeout": 2.0,
    }
    with pytest.raises(rtc.RpcError) as retryable:
        await sender.perform_rpc(**kwargs)
    assert retryable.value.code == rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND
    assert await sender.perform_rpc(**kwargs) == "page-ok"
    with pytest.raises(rtc.RpcError) as refused:
        await sender.perform_rpc(**kwargs)
    assert refused.value.code == 400
    assert fake.calls[0] == {
        "to": "user-1",
        "method": "agent_state_changed",
        "payload": "{}",
        "timeout": 2.0,
    }
    for outcome in outcomes:
        assert delta("avatar_agent_state_rpc_attempts_total", outcome=outcome) == 1, outcome


# --- the endpoint's options ------------------------------------------------------------------


@pytest.fixture
def no_multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_ENV, raising=False)
    monkeypatch.delenv("AGENT_METRICS_PORT", raising=False)


@pytest.mark.usefixtures("no_multiproc_env")
def test_no_metrics_port_means_no_endpoint() -> None:
    options = metrics_server_options(load_settings(_env_file=None))
    assert options == {"prometheus_port": None, "prometheus_multiproc_dir": None}


@pytest.mark.usefixtures("no_multiproc_env")
def test_metrics_port_serves_from_a_private_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setenv("AGENT_METRICS_PORT", "19464")
    first = metrics_server_options(load_settings(_env_file=None))
    second = metrics_server_options(load_settings(_env_file=None))
    assert first["prometheus_port"] == 19464
    for options in (first, second):
        directory = Path(str(options["prometheus_multiproc_dir"]))
        assert directory.parent == tmp_path
        assert directory.name.startswith(f"avatar-agent-metrics-{os.getpid()}-")
        assert directory.is_dir()
    assert first["prometheus_multiproc_dir"] != second["prometheus_multiproc_dir"]


@pytest.mark.usefixtures("no_multiproc_env")
def test_an_explicit_multiprocess_directory_is_left_to_the_framework(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    options = metrics_server_options(load_settings(_env_file=None, agent_metrics_port=9464))
    assert options == {"prometheus_port": 9464, "prometheus_multiproc_dir": None}


def test_metrics_port_must_not_be_the_health_port() -> None:
    with pytest.raises(SettingsError, match="AGENT_METRICS_PORT"):
        load_settings(_env_file=None, agent_http_port=8081, agent_metrics_port=8081)


def test_dead_processes_stop_counting_as_active_sessions(tmp_path: Path) -> None:
    dead_pid = 2**22 + 12345  # above the kernel's pid_max: never a running process
    for name in (
        f"gauge_livesum_{dead_pid}.db",
        f"gauge_livesum_{os.getpid()}.db",
        f"counter_{dead_pid}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    assert forget_dead_processes(str(tmp_path)) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{dead_pid}.db",  # totals of a dead process still count
        f"gauge_livesum_{os.getpid()}.db",
    ]
    assert forget_dead_processes(str(tmp_path / "missing")) == []
