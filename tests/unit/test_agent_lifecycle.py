from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from agent_fakes import FaqFakeLLM
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    CloseEvent,
    ErrorEvent,
    RunResult,
    llm,
    stt,
    tts,
)
from livekit.agents.stt import STTCapabilities
from livekit.agents.voice.agent_session import SessionConnectOptions

from agent import forkserver_signals
from agent.lifecycle import (
    MAX_UNRECOVERABLE_ERRORS,
    end_job_when_session_closes,
    speak_fallback_on_errors,
    wait_for_rejoin,
)
from agent.pipeline import provider_connect_options
from agent.settings import load_settings
from agent.tasks import BackgroundTasks

pytestmark = pytest.mark.unit


class FakeLines:
    fallback_line = "Sorry, trouble."
    goodbye_line = "Bye."

    def __init__(self) -> None:
        self.said: list[str] = []

    def say_line(self, text: str, *, allow_interruptions: bool = True) -> object:
        self.said.append(text)
        return object()


def _llm_error(recoverable: bool) -> llm.LLMError:
    return llm.LLMError(timestamp=0, label="x", error=RuntimeError("boom"), recoverable=recoverable)


def _emit(session: AgentSession[None], error: object) -> None:
    session.emit("error", ErrorEvent(error=error, source=None))


async def test_unrecoverable_llm_error_speaks_the_fallback_once_per_interval() -> None:
    session: AgentSession[None] = AgentSession()
    lines = FakeLines()
    now = [100.0]
    speak_fallback_on_errors(session, lines, min_interval=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    _emit(session, _llm_error(recoverable=False))
    _emit(session, _llm_error(recoverable=False))
    assert lines.said == ["Sorry, trouble."]
    now[0] += 6
    _emit(session, _llm_error(recoverable=False))
    assert lines.said == ["Sorry, trouble."] * 2


async def test_recoverable_errors_are_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    session: AgentSession[None] = AgentSession()
    lines = FakeLines()
    speak_fallback_on_errors(session, lines)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="agent.lifecycle"):
        _emit(session, _llm_error(recoverable=True))
    assert lines.said == []
    assert any("recoverable llm_error" in r.getMessage() for r in caplog.records)


async def test_stt_errors_speak_but_tts_errors_cannot() -> None:
    session: AgentSession[None] = AgentSession()
    lines = FakeLines()
    speak_fallback_on_errors(session, lines, min_interval=0)  # type: ignore[arg-type]
    _emit(session, tts.TTSError(timestamp=0, label="t", error=RuntimeError("x"), recoverable=False))
    assert lines.said == []
    _emit(session, stt.STTError(timestamp=0, label="s", error=RuntimeError("x"), recoverable=False))
    assert lines.said == ["Sorry, trouble."]


@dataclass
class FakeParticipant:
    identity: str
    disconnect_reason: int | None = None


@dataclass
class FakeSession:
    shutdowns: list[bool] = field(default_factory=list)

    def shutdown(self, *, drain: bool = True) -> None:
        self.shutdowns.append(drain)


async def test_dropped_user_that_rejoins_keeps_the_session_and_gets_the_state() -> None:
    room = rtc.EventEmitter[str]()
    session = FakeSession()
    rejoined: list[bool] = []
    tasks = BackgroundTasks()
    wait_for_rejoin(
        room,
        session,
        "u1",
        grace=0.2,
        on_rejoin=lambda: rejoined.append(True),  # type: ignore[arg-type]
        tasks=tasks,
    )
    room.emit("participant_disconnected", FakeParticipant("u1", rtc.DisconnectReason.SIGNAL_CLOSE))
    await asyncio.sleep(0.05)
    room.emit("participant_connected", FakeParticipant("u1"))
    await asyncio.sleep(0.3)
    assert session.shutdowns == []
    assert rejoined == [True]
    await tasks.aclose()


async def test_dropped_user_that_never_rejoins_ends_the_session() -> None:
    room = rtc.EventEmitter[str]()
    session = FakeSession()
    tasks = BackgroundTasks()
    wait_for_rejoin(room, session, "u1", grace=0.05, on_rejoin=lambda: None, tasks=tasks)  # type: ignore[arg-type]
    room.emit("participant_disconnected", FakeParticipant("other", None))
    room.emit("participant_disconnected", FakeParticipant("u1", None))
    await asyncio.sleep(0.2)
    assert session.shutdowns == [False]


async def test_user_leaving_on_purpose_is_left_to_the_framework() -> None:
    room = rtc.EventEmitter[str]()
    session = FakeSession()
    tasks = BackgroundTasks()
    wait_for_rejoin(room, session, "u1", grace=0.01, on_rejoin=lambda: None, tasks=tasks)  # type: ignore[arg-type]
    room.emit(
        "participant_disconnected", FakeParticipant("u1", rtc.DisconnectReason.CLIENT_INITIATED)
    )
    await asyncio.sleep(0.05)
    assert session.shutdowns == []
    assert len(tasks) == 0


async def test_session_close_ends_the_job() -> None:
    from livekit.agents import CloseEvent, CloseReason

    session: AgentSession[None] = AgentSession()
    reasons: list[str] = []
    end_job_when_session_closes(session, reasons.append)
    session.emit("close", CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    assert reasons == ["session closed: participant_disconnected"]


class DownSTT(stt.STT[None]):
    """An STT whose provider is down: the test emits its unrecoverable errors."""

    def __init__(self) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=False, interim_results=False))

    async def _recognize_impl(self, *args: object, **kwargs: object) -> stt.SpeechEvent:
        raise NotImplementedError


def _stt_outage_error() -> stt.STTError:
    return stt.STTError(timestamp=0, label="s", error=RuntimeError("503"), recoverable=False)


@pytest.mark.parametrize(
    ("max_errors", "survives"),
    [(3, False), (MAX_UNRECOVERABLE_ERRORS, True)],
    ids=["framework-default", "ours"],
)
async def test_an_stt_outage_of_many_utterances_keeps_the_session(
    max_errors: int, survives: bool
) -> None:
    """The framework's default closed the session at the 4th failed utterance (a transcript is
    the only thing that resets its STT count, and the fallback line is not one); ours keeps it,
    and typed messages, which need no STT, are still answered."""
    down = DownSTT()
    options = SessionConnectOptions(max_unrecoverable_errors=max_errors)
    async with AgentSession(llm=FaqFakeLLM(), stt=down, conn_options=options) as session:
        closed: list[CloseEvent] = []
        session.on("close", closed.append)
        await session.start(Agent(instructions="Answer briefly."))
        for _ in range(6):
            down.emit("error", _stt_outage_error())
        await asyncio.sleep(0.2)
        if not survives:
            assert [ev.reason.value for ev in closed] == ["error"]
            return
        assert closed == []
        result: RunResult[None] = await session.run(user_input="Are you still there?")
        result.expect.next_event().is_message(role="assistant")


def test_provider_calls_use_the_configured_timeout_and_keep_retrying() -> None:
    settings = load_settings(_env_file=None, agent_provider_timeout_seconds=3.5)
    options = provider_connect_options(settings)
    assert options.timeout == 3.5
    assert options.max_retry >= 1


_FORKSERVER_SCRIPT = """
import json, multiprocessing, signal, sys, time
from multiprocessing import forkserver

def ignores_sigterm(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))

ctx = multiprocessing.get_context("forkserver")
if sys.argv[1] == "preloaded":
    ctx.set_forkserver_preload(["agent.forkserver_signals"])
elif sys.argv[1] == "framework":  # what livekit-agents' AgentServer preloads, and its job name
    ctx.set_forkserver_preload(["livekit.agents.ipc._preload"])
job = ctx.Process(target=time.sleep, args=(60,), name="job_proc")
job.start()
print(json.dumps({
    "forkserver": ignores_sigterm(forkserver._forkserver._forkserver_pid),
    "job": ignores_sigterm(job.pid),
    "here": ignores_sigterm("self"),
}))
job.kill()
job.join()
"""


@pytest.mark.parametrize(("preload", "ignored"), [("preloaded", True), ("plain", False)])
def test_forkserver_and_its_job_processes_ignore_a_group_wide_sigterm(
    preload: str, ignored: bool
) -> None:
    """With the module preloaded, a SIGTERM to the whole process group leaves the forkserver and
    the job processes to the worker's drain; without it (the framework alone) both die."""
    done = subprocess.run(
        [sys.executable, "-c", _FORKSERVER_SCRIPT, preload],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen == {"forkserver": ignored, "job": ignored, "here": False}


def test_upstream_forkserver_signal_bug_is_still_there() -> None:
    """livekit/agents#7336: under the forkserver the framework's job processes do not ignore
    SIGTERM/SIGINT (`job_proc_lazy_main` checks the process name at import, in the forkserver).

    When this fails, the installed livekit-agents ignores the signals in its job processes by
    itself: delete `agent/forkserver_signals.py` and its `preload_modules` line in the worker.
    """
    done = subprocess.run(
        [sys.executable, "-c", _FORKSERVER_SCRIPT, "framework"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["job"] is False, (
        "livekit/agents#7336 is fixed in the installed livekit-agents: job processes now ignore "
        "SIGTERM by themselves; remove the agent/forkserver_signals.py workaround"
    )


def test_forkserver_signals_does_nothing_outside_the_forkserver() -> None:
    before = signal.getsignal(signal.SIGTERM)
    module = importlib.reload(forkserver_signals)
    assert module.imported_by_the_forkserver() is False
    assert signal.getsignal(signal.SIGTERM) is before


class RoomWithParticipants(rtc.EventEmitter[str]):
    def __init__(self) -> None:
        super().__init__()
        self.remote_participants: dict[str, FakeParticipant] = {}


async def test_our_reconnect_resends_the_state_to_a_user_already_back() -> None:
    """After a server restart the user may reconnect before the agent does: no
    `participant_connected` reaches us then, so the agent's own reconnect re-sends the state."""
    room = RoomWithParticipants()
    rejoined: list[bool] = []
    tasks = BackgroundTasks()
    wait_for_rejoin(
        room,  # type: ignore[arg-type]
        FakeSession(),  # type: ignore[arg-type]
        "u1",
        grace=1.0,
        on_rejoin=lambda: rejoined.append(True),
        tasks=tasks,
    )
    room.emit("reconnected")
    assert rejoined == []  # the user is not back yet: `participant_connected` will come
    room.remote_participants["u1"] = FakeParticipant("u1")
    room.emit("reconnected")
    assert rejoined == [True]
    await tasks.aclose()
