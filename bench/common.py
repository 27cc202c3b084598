"""What every benchmark shares: the scenario, machine facts, statistics, result files, process
sampling, and one voice turn as the simulated user sees it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from livekit import rtc

from common.machine import cpu_model
from common.metadata import Faq
from common.protocol import is_agent_identity
from devstack.livekit_server import LIVEKIT_SERVER_VERSION
from devstack.sample_faqs import SAMPLE_FAQS
from simuser import SimulatedUser, Stamp

from .periodic import Periodic

__all__ = [
    "ATTRIBUTE_AGENT_STATE",
    "DEFAULT_RESULTS_DIR",
    "FAQS",
    "QUESTIONS",
    "AgentAttributeStates",
    "ProcessTreeSampler",
    "ResultFile",
    "TurnSample",
    "base_parser",
    "bootstrap_median_diff",
    "git_state",
    "machine_info",
    "percentile",
    "session_bootstrap",
    "setup_logging",
    "summarize",
    "voice_turn",
]

logger = logging.getLogger(__name__)

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The framework's participant attribute with the agent's state: the one signal both our agent
# and the plain baseline publish, so turn pacing is measured the same way for both.
ATTRIBUTE_AGENT_STATE = "lk.agent.state"

# The verified voice scenario: the project's one sample FAQ set.
FAQS: tuple[Faq, ...] = SAMPLE_FAQS
QUESTIONS: tuple[str, ...] = tuple(f.question for f in FAQS)


def setup_logging(verbose: bool = False) -> None:
    # The SDKs are chatty at INFO (the rtc SDK even logs on the root logger); the benchmark's
    # own progress lines are what matter here.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("bench").setLevel(logging.DEBUG if verbose else logging.INFO)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where JSON/PNG go"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (jitter, bootstrap)")
    parser.add_argument("--verbose", action="store_true")
    return parser


# ---- machine and versions ---------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state() -> dict[str, Any]:
    """The commit measured and whether the work tree differed from it (uncommitted changes)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    # Result files are outputs: a run after another one in the same session is not "dirty".
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return {
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def git_block(machine: dict[str, Any]) -> dict[str, Any]:
    """The result's top-level record of what was measured: commit and dirty flag."""
    return {"commit": machine.get("git_commit"), "dirty": machine.get("git_dirty")}


def machine_info() -> dict[str, Any]:
    """Date, machine, versions, git commit (+ dirty flag) and the load average now (the start)."""
    return {
        **git_state(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "livekit_agents": _version("livekit-agents"),
        "livekit_rtc": _version("livekit"),
        "livekit_server": LIVEKIT_SERVER_VERSION,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float], digits: int = 1) -> dict[str, float | int | None]:
    """n, mean, min, p25, p50, p75, p95, p99, max (None when there are no values)."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None}
    out: dict[str, float | int | None] = {
        "n": len(values),
        "mean": round(sum(values) / len(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }
    for q in (25, 50, 75, 95, 99):
        out[f"p{q}"] = round(percentile(values, q), digits)
    return out


def session_bootstrap(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]] | None,
    rng: random.Random,
    *,
    q: float = 50,
    rounds: int = 2000,
) -> dict[str, float] | None:
    """Percentile `q` of `a`'s turns (minus that of `b`'s when given) with a 95% interval that
    resamples whole sessions: turns of one session share a room, a process and a moment of
    machine load, so they are not independent and a turn-level bootstrap would be too narrow.
    """
    a = [s for s in a if s]
    b = None if b is None else [s for s in b if s]
    if not a or (b is not None and not b):
        return None

    def stat(sessions: Sequence[Sequence[float]]) -> float:
        return percentile([v for s in sessions for v in s], q)

    def estimate(xa: Sequence[Sequence[float]], xb: Sequence[Sequence[float]] | None) -> float:
        return stat(xa) - (stat(xb) if xb is not None else 0.0)

    draws = sorted(
        estimate(rng.choices(a, k=len(a)), None if b is None else rng.choices(b, k=len(b)))
        for _ in range(rounds)
    )
    return {
        "value": round(estimate(a, b), 1),
        "ci95_low": round(percentile(draws, 2.5), 1),
        "ci95_high": round(percentile(draws, 97.5), 1),
        "sessions": len(a) + (len(b) if b is not None else 0),
    }


def bootstrap_median_diff(
    a: Sequence[float], b: Sequence[float], rng: random.Random, rounds: int = 2000
) -> dict[str, float] | None:
    """median(a) - median(b) with a 95% bootstrap interval, or None without data."""
    if not a or not b:
        return None
    diffs = sorted(
        percentile(rng.choices(a, k=len(a)), 50) - percentile(rng.choices(b, k=len(b)), 50)
        for _ in range(rounds)
    )
    return {
        "diff": round(percentile(a, 50) - percentile(b, 50), 1),
        "ci95_low": round(percentile(diffs, 2.5), 1),
        "ci95_high": round(percentile(diffs, 97.5), 1),
    }


# ---- result files -----------------------------------------------------------------------------


@dataclass
class ResultFile:
    """One benchmark's JSON result: machine facts at start, parameters, data, summary rows.

    `summary` rows (`metric`, `value`, optional `baseline`, `note`) are what `bench.report`
    shows; everything else is for plots and for digging.
    """

    name: str
    parameters: dict[str, Any]
    results_dir: Path = DEFAULT_RESULTS_DIR
    machine: dict[str, Any] = field(default_factory=machine_info)
    started: float = field(default_factory=time.monotonic)
    data: dict[str, Any] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)
    # The 1-minute load average every 10 s while the benchmark runs: the machine may be shared.
    load_samples: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop_load = threading.Event()
        thread = threading.Thread(target=self._sample_load, name="load-sampler", daemon=True)
        thread.start()

    def _sample_load(self) -> None:
        while True:
            self.load_samples.append(
                (round(time.monotonic() - self.started, 1), round(os.getloadavg()[0], 2))
            )
            if self._stop_load.wait(10.0):
                return

    def row(self, metric: str, value: str, baseline: str = "", note: str = "") -> None:
        self.summary.append({"metric": metric, "value": value, "baseline": baseline, "note": note})

    @property
    def json_path(self) -> Path:
        return self.results_dir / f"{self.name}.json"

    @property
    def png_path(self) -> Path:
        return self.results_dir / f"{self.name}.png"

    @property
    def caption(self) -> str:
        """The plot's footnote: when, on what, under which load, with which versions."""
        m = self.machine
        commit = (m.get("git_commit") or "?")[:10] + ("+dirty" if m.get("git_dirty") else "")
        return (
            f"{m['date']} · {commit} · {m['nproc']} CPU {m.get('cpu_model', '')}"
            f" · load {m['load_avg_start']}"
            f" · livekit-agents {m['livekit_agents']} · livekit-server {m['livekit_server']}"
        )

    def finish(self, draw: Callable[[Path, str], None]) -> Path:
        """Draw the plot (`draw(png_path, caption)`), write the JSON, print the summary rows."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        draw(self.png_path, self.caption)
        path = self.write()
        for row in self.summary:
            print(f"{row['metric']}: {row['value']}  {row['baseline']}  {row['note']}")
        return path

    def write(self) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        machine = dict(self.machine)
        machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        self._stop_load.set()
        loads = [load for _, load in self.load_samples]
        if loads:
            machine["load_1min_during"] = {
                "mean": round(sum(loads) / len(loads), 2),
                "max": max(loads),
                "samples": self.load_samples,
            }
        body = {
            "benchmark": self.name,
            "git": git_block(machine),
            "machine": machine,
            "runtime_s": round(time.monotonic() - self.started, 1),
            "parameters": self.parameters,
            "summary": self.summary,
            "plot": self.png_path.name,
            "data": self.data,
        }
        self.json_path.write_text(json.dumps(body, indent=1, default=str) + "\n")
        logger.info("wrote %s", self.json_path)
        return self.json_path


def fmt_ms(stats: dict[str, Any], *keys: str) -> str:
    """'p50 812 / p95 1020 ms' from a `summarize` dict."""
    parts = [f"{k} {stats[k]:.0f}" for k in keys if stats.get(k) is not None]
    return (" / ".join(parts) + " ms") if parts else "no data"


# ---- process sampling -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeSample:
    at: float
    cpu_s: float
    rss: int
    pss: int
    processes: int


class ProcessTreeSampler(Periodic):
    """CPU seconds and memory of a process and all its descendants, sampled off the loop.

    CPU time of processes that exit between samples is kept at its last sampled value, so job
    processes that come and go are still counted (up to one interval of their last work).
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(interval)
        self.root = psutil.Process(pid)
        self.samples: list[TreeSample] = []
        self._cpu_by_pid: dict[int, float] = {}

    def sample_now(self) -> TreeSample:
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        rss = pss = 0
        alive = 0
        for proc in members:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    self._cpu_by_pid[proc.pid] = times.user + times.system
                    mem = proc.memory_full_info()
                rss += mem.rss
                pss += getattr(mem, "pss", mem.rss)
                alive += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        sample = TreeSample(time.monotonic(), sum(self._cpu_by_pid.values()), rss, pss, alive)
        self.samples.append(sample)
        return sample

    def tick(self) -> TreeSample:
        return self.sample_now()

    async def stop(self) -> None:
        """Stops sampling, then takes a last sample (the window's end)."""
        await super().stop()
        await asyncio.to_thread(self.sample_now)

    def window(self, start: float, end: float) -> list[TreeSample]:
        return [s for s in self.samples if start <= s.at <= end]


# ---- agent state from the participant attribute -----------------------------------------------


class AgentAttributeStates:
    """Changes of the agent's `lk.agent.state` attribute as the user sees them, stamped.

    The framework sets this attribute for any agent (ours and the baseline), so this is how the
    benchmarks pace voice turns for both; our state RPC is measured separately.
    """

    def __init__(self, user: SimulatedUser) -> None:
        self._user = user
        self.changes: list[tuple[str, Stamp]] = []
        user.room.on("participant_attributes_changed", self._on_changed)

    def close(self) -> None:
        self._user.room.off("participant_attributes_changed", self._on_changed)

    def _on_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if not is_agent_identity(participant.identity) or ATTRIBUTE_AGENT_STATE not in changed:
            return
        self.changes.append((changed[ATTRIBUTE_AGENT_STATE], Stamp.now()))
        self._user.recording.changed()

    def current(self) -> str | None:
        for participant in self._user.room.remote_participants.values():
            if is_agent_identity(participant.identity):
                return participant.attributes.get(ATTRIBUTE_AGENT_STATE)
        return None

    async def wait(self, state: str, *, after: int = 0, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Index (in `changes`) of the first change to `state` at index >= `after`."""

        def check() -> int | None:
            for i in range(after, len(self.changes)):
                if self.changes[i][0] == state:
                    return i
            return None

        return await self._user.recording.wait_for(check, timeout, f"agent attribute {state!r}")

    async def wait_greeting_done(self, timeout: float = 60.0) -> Stamp:  # noqa: ASYNC109
        """The greeting spoken and over: `speaking`, then `listening` again."""
        spoke = await self.wait("speaking", timeout=timeout)
        back = await self.wait("listening", after=spoke + 1, timeout=timeout)
        return self.changes[back][1]


# ---- one voice turn ---------------------------------------------------------------------------


@dataclass(slots=True)
class TurnSample:
    """One question spoken into the microphone and the start of the agent's audible answer.

    A turn succeeds only when every step arrived in time (audio, final answer transcript, the
    agent back to listening); a turn with any timeout is a failure, whatever was measured.
    """

    question: str
    speech_started: Stamp
    speech_ended: Stamp
    first_audio: Stamp | None
    answer: str | None = None
    error: str | None = None
    # The user's own transcript at the page: first stream (an interim with streaming STT) and
    # the final.
    first_user_text: Stamp | None = None
    user_final: Stamp | None = None
    user_final_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.first_audio is not None

    @property
    def latency_ms(self) -> float | None:
        if not self.ok or self.first_audio is None:
            return None
        return (self.first_audio.mono - self.speech_ended.mono) * 1000.0

    def to_dict(self) -> dict[str, Any]:
        def since(a: Stamp | None, b: Stamp) -> float | None:
            return None if a is None else round((a.mono - b.mono) * 1000.0, 1)

        return {
            "question": self.question,
            "ok": self.ok,
            "speech_ended_wall_ms": self.speech_ended.wall_ms,
            "first_audio_wall_ms": self.first_audio.wall_ms if self.first_audio else None,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "first_user_text_after_speech_start_ms": since(
                self.first_user_text, self.speech_started
            ),
            "user_final_after_speech_end_ms": since(self.user_final, self.speech_ended),
            "user_final_text": self.user_final_text,
            "answer": self.answer,
            "error": self.error,
        }


async def voice_turn(
    user: SimulatedUser,
    states: AgentAttributeStates,
    question: str | Path,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
    lead_silence: float = 0.5,
    trail_silence: float = 1.0,
) -> TurnSample:
    """Say `question` (text or a WAV), take the first agent audio after the end of speech,
    wait for the answer to end (agent back to `listening`). Failures are recorded, not raised."""
    mark = len(states.changes)
    utterance = await user.say(question, lead_silence=lead_silence, trail_silence=trail_silence)
    ended = utterance.speech_ended
    sample = TurnSample(
        question=str(question),
        speech_started=utterance.speech_started,
        speech_ended=ended,
        first_audio=None,
    )
    try:
        sample.first_audio = await user.first_agent_audio_after(ended, timeout=timeout)
        transcript = await user.wait_for_transcript(
            speaker="agent", final=True, after=ended, timeout=timeout
        )
        sample.answer = transcript.text
        spoke = await states.wait("speaking", after=mark, timeout=timeout)
        await states.wait("listening", after=spoke + 1, timeout=timeout)
    except TimeoutError as exc:
        sample.error = f"timeout: {exc}"
        logger.warning("turn %r: %s", question, exc)
    heard = user.transcripts(speaker="user", after=utterance.started)
    if heard:
        sample.first_user_text = heard[0].started
        final = next((s for s in heard if s.final), None)
        if final is not None:
            sample.user_final = final.started
            sample.user_final_text = final.text
    return sample


def jitter(rng: random.Random, low: float, high: float) -> float:
    return rng.uniform(low, high)


def first(items: Sequence[Any], pred: Callable[[Any], bool]) -> Any | None:
    return next((x for x in items if pred(x)), None)
