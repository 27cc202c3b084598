"""Shared pieces of the fault tests (`test_faults_*.py`): own stacks, fault injection, log reads.

Every fault test module builds its own `Stack` (never the shared session fixture): the tests
restart, kill and break things. The agent logs JSON (`LOG_FORMAT=json`), so the tests read what
the worker and each job process really did, and which process served which room.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from agent.prompts import LanguagePrompts, language_prompts
from common.languages import get_language
from devstack.loopback import off_loopback_sockets
from devstack.sample_faqs import HOURS
from devstack.stack import Stack, StackConfig
from simuser import SimulatedUser, Stamp, fetch_token
from simuser.recording import ParticipantEvent, StateChange, TranscriptStream

__all__ = [
    "ANSWER",
    "FAQS",
    "FAULT_ENV",
    "QUESTION",
    "AgentLog",
    "DroppableUser",
    "WorkerStatus",
    "ask",
    "clear_faults",
    "droppable_user",
    "fault_stack",
    "forget_old_logs",
    "listening_now",
    "new_session_works",
    "process_group",
    "set_fault",
    "spoken_lines",
    "wait_for",
    "wait_for_greeting",
    "wait_for_jobs",
    "wait_for_leave",
    "wait_for_text",
    "worker_status",
]

T = TypeVar("T")

QUESTION = HOURS.question
ANSWER = HOURS.answer
FAQS = [HOURS]

# Hang guards only: generous, because the machine is shared with other test runs.
TURN_TIMEOUT = 60.0
JOIN_TIMEOUT = 60.0

FAULT_ENV = {
    "LOG_FORMAT": "json",
    "STANDIN_ENABLE_FAULTS": "1",
    "RATE_LIMIT_PER_MINUTE": "100000",
}


def spoken_lines(language: str = "en") -> LanguagePrompts:
    """The fixed per-language lines the agent speaks (greeting, fallback, goodbye)."""
    return language_prompts(get_language(language).prompt)


def forget_old_logs(stack: Stack) -> Stack:
    """A log left by an old run on the same port would fool the readiness checks and our reads."""
    for service in stack.services.values():
        service.log_path.unlink(missing_ok=True)
    stack.livekit.log_path.unlink(missing_ok=True)
    return stack


@contextmanager
def fault_stack(**env: str) -> Iterator[Stack]:
    """livekit-server, stand-in, token server and agent on free ports, JSON agent logs."""
    stack = Stack(
        StackConfig(
            env={**FAULT_ENV, **env},
            services=("standin", "token_server", "agent"),
        )
    )
    with forget_old_logs(stack):
        yield stack


async def new_session_works(stack: Stack) -> None:
    """A fresh user gets an agent, its greeting, and an answer to a typed question, with every
    socket on loopback."""
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    async with user:
        await wait_for_greeting(user)
        answer = await ask(user, QUESTION, expect=ANSWER)
        assert answer.final
        assert off_loopback_sockets([*stack.pids(), os.getpid()]) == []


# ---- waiting ----------------------------------------------------------------------------------


async def wait_for(
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float = TURN_TIMEOUT,  # noqa: ASYNC109
    interval: float = 0.2,
) -> T:
    """Poll `check` until it returns something other than None or False (a hang guard)."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if value is not None and value is not False:
                return value
            await asyncio.sleep(interval)
    raise AssertionError(f"unreachable: {what}")  # pragma: no cover


async def wait_for_greeting(user: SimulatedUser) -> StateChange:
    """The agent joined, spoke its greeting and listens again (speech before that is ignored)."""
    await user.wait_for_agent(JOIN_TIMEOUT)
    speaking = await user.wait_for_state("speaking", timeout=JOIN_TIMEOUT)
    return await user.wait_for_state(
        "listening", after_seq=speaking.event.seq, timeout=TURN_TIMEOUT
    )


async def listening_now(user: SimulatedUser) -> int:
    """Wait until the newest state the agent sent is "listening"; return its seq."""

    def check() -> int | None:
        states = user.recording.states
        if states and max(states, key=lambda c: c.event.seq).event.state == "listening":
            return user.last_seq
        return None

    return await wait_for(check, "the agent listening", timeout=TURN_TIMEOUT)


async def wait_for_leave(
    user: SimulatedUser,
    identity: str,
    *,
    timeout: float = JOIN_TIMEOUT,  # noqa: ASYNC109
) -> ParticipantEvent:
    """The user saw `identity` leave the room."""
    return await user.recording.wait_for(
        lambda: next(
            (e for e in user.recording.participants if (e.kind, e.identity) == ("left", identity)),
            None,
        ),
        timeout,
        f"{identity} leaving",
    )


async def ask(user: SimulatedUser, text: str, *, expect: str) -> TranscriptStream:
    """Type `text` (send_text); return the agent's final transcript containing `expect` once
    the agent listens again (the turn is over)."""
    before = Stamp.now()
    await user.send_text(text)
    answer = await user.wait_for_transcript(
        speaker="agent", after=before, contains=expect, timeout=TURN_TIMEOUT
    )
    await listening_now(user)
    return answer


# ---- the stand-in's fault API -----------------------------------------------------------------


def _faults_url(stack: Stack) -> str:
    return stack.standin_url.removesuffix("/v1") + "/admin/faults"


async def set_fault(
    stack: Stack,
    target: str,
    mode: str,
    *,
    count: int | None = None,
    delay_s: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"target": target, "mode": mode, "count": count}
    if delay_s is not None:
        body["delay_s"] = delay_s
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(_faults_url(stack), json=body)
    resp.raise_for_status()
    state: dict[str, Any] = resp.json()
    return state


async def clear_faults(stack: Stack) -> dict[str, Any]:
    """Remove every fault rule; the answer counts the requests each target has failed so far."""
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.delete(_faults_url(stack))
    resp.raise_for_status()
    state: dict[str, Any] = resp.json()
    return state


# ---- the worker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerStatus:
    healthy: bool
    active_jobs: int


async def worker_status(stack: Stack) -> WorkerStatus:
    """The worker's health endpoint (`/`) and its job count (`/worker`)."""
    base = stack.agent_health_url.rstrip("/")
    async with httpx.AsyncClient(timeout=5) as client:
        health = await client.get(base + "/")
        info = await client.get(base + "/worker")
    info.raise_for_status()
    # proto3 JSON leaves zero counts out
    return WorkerStatus(health.status_code == 200, int(info.json().get("active_jobs", 0)))


async def wait_for_jobs(
    stack: Stack,
    count: int,
    *,
    timeout: float = JOIN_TIMEOUT,  # noqa: ASYNC109
) -> WorkerStatus:
    """Poll the worker until it reports `count` running jobs."""
    async with asyncio.timeout(timeout):
        while True:
            status = await worker_status(stack)
            if status.active_jobs == count:
                return status
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")  # pragma: no cover


def process_group(pgid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of a process group: a service and everything it started."""
    members: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue  # exited while we looked
    return members


async def wait_for_text(
    path: Path,
    *needles: str,
    timeout: float = TURN_TIMEOUT,  # noqa: ASYNC109
) -> str:
    """The first line of a text log (e.g. livekit-server's) that contains every needle."""

    def check() -> str | None:
        if not path.exists():
            return None
        for line in path.read_text(errors="replace").splitlines():
            if all(n in line for n in needles):
                return line
        return None

    return await wait_for(check, f"a line with {needles} in {path.name}", timeout=timeout)


class AgentLog:
    """The agent's JSON log from a point on (`mark()`), parsed record by record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> AgentLog:
        """Only records written after this call are read from now on."""
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        return self

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        out: list[dict[str, Any]] = []
        for raw in data.decode(errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a line that is not ours (e.g. a native library's)
            if isinstance(record, dict):
                out.append(record)
        return out

    def find(self, contains: str, **fields: object) -> list[dict[str, Any]]:
        """Records whose message contains `contains` and whose fields equal `fields`."""
        return [
            r
            for r in self.records()
            if contains in str(r.get("message", ""))
            and all(r.get(k) == v for k, v in fields.items())
        ]

    async def wait(
        self,
        contains: str,
        *,
        timeout: float = TURN_TIMEOUT,  # noqa: ASYNC109
        **fields: object,
    ) -> dict[str, Any]:
        found = await wait_for(
            lambda: self.find(contains, **fields) or None,
            f"agent log record {contains!r} {fields}",
            timeout=timeout,
        )
        return found[0]

    def job_pid(self, room: str) -> int:
        """The pid of the job process serving `room` (our records carry the room and pid)."""
        for record in self.records():
            if record.get("room") == room and str(record.get("logger", "")).startswith("agent."):
                return int(record["pid"])
        raise AssertionError(f"no agent record for room {room}")


# ---- a user in its own process, to be dropped ---------------------------------------------------

_DROP_USER = Path(__file__).with_name("drop_user.py")


@dataclass(frozen=True)
class DroppableUser:
    """A greeted user in a child process; `drop()` SIGKILLs it (no leave reaches the server)."""

    process: asyncio.subprocess.Process
    room: str
    identity: str
    agent: str
    last_seq: int
    # The user's own grant: a page that lost its connection rejoins with the token it has (the
    # token server gives no second token for a live room).
    url: str
    token: str

    async def drop(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


@asynccontextmanager
async def droppable_user(stack: Stack, **token: Any) -> AsyncIterator[DroppableUser]:
    """Start a user process (a token from the token server), wait for the greeting to end."""
    grant = await fetch_token(stack.token_url, **token)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_DROP_USER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write((json.dumps({"url": grant.url, "token": grant.token}) + "\n").encode())
        await process.stdin.drain()
        process.stdin.close()
        async with asyncio.timeout(JOIN_TIMEOUT * 2):
            ready: Mapping[str, Any] = json.loads(await process.stdout.readline() or b"{}")
        assert ready.get("ready"), f"the user process did not get its greeting: {ready}"
        yield DroppableUser(
            process,
            grant.room,
            grant.identity,
            str(ready["agent"]),
            int(ready["last_seq"]),
            grant.url,
            grant.token,
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
