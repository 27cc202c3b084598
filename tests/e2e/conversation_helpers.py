"""Shared pieces of the end-to-end conversation tests (`test_conversation_*.py`).

Everything here acts through what a real frontend user receives: the simulated user's recording
(state RPCs, `lk.transcription` streams, the agent's audio) plus, for the audio, the offline
recogniser of the stand-in. Nothing here reaches into the agent process.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import unicodedata
import wave
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
import numpy.typing as npt
import psutil
from livekit import api, rtc
from rapidfuzz import fuzz

from agent.prompts import render_tts_instructions
from common.languages import get_language
from common.metadata import Faq
from common.protocol import AgentState
from devstack.loopback import off_loopback_sockets
from devstack.sample_faqs import HOURS, PASSWORD
from devstack.stack import Stack
from simuser import SimulatedUser, StateChange, TranscriptStream
from simuser.audio import SAMPLE_RATE, resample, to_int16

__all__ = [
    "AGENT_TIMEOUT",
    "HISTORY",
    "HORARIO",
    "HOURS",
    "PASSWORD",
    "TURN_TIMEOUT",
    "Conversation",
    "Int16Array",
    "agent_audio_since",
    "agent_audio_track_sid",
    "agent_log_lines",
    "assert_loopback_only",
    "assert_one_final_per_segment",
    "assert_session_states_sane",
    "assert_turn_order",
    "audio_position",
    "collapse",
    "conversation",
    "mic_track_sid",
    "normalize",
    "recognise",
    "rpc_once",
    "similarity",
    "states_after",
    "synthesise",
    "voice_distance",
    "voiced_between",
    "wait_until_listening",
]

Int16Array = npt.NDArray[np.int16]

# --- FAQ data --------------------------------------------------------------------------------
# Numbers are spelled out: the recogniser hears words, and the answers are compared as words.

# About 16 s of espeak-ng speech: long enough to be cut in the middle by a barge-in or interrupt.
HISTORY = Faq(
    question="Tell me about the company history.",
    answer=(
        "Our company started in nineteen ninety as a small family shop on the corner of the old "
        "market square. Over the years we grew into a regional business with twelve stores, a "
        "friendly support team, and a warehouse that ships orders across the whole country every "
        "single day of the week."
    ),
)
# Spanish: covered at the text level only (send_text), since the offline recogniser hears English.
HORARIO = Faq(
    question="¿Cuál es el horario de atención?",
    answer="Abrimos de nueve a cinco, de lunes a viernes.",
)

# Hang guards only: every wait returns as soon as its event arrives.
AGENT_TIMEOUT = 60.0
TURN_TIMEOUT = 60.0


# --- joining ---------------------------------------------------------------------------------


@dataclass
class Conversation:
    """A connected user whose agent has joined and finished its greeting."""

    user: SimulatedUser
    room: str
    greeting: TranscriptStream


async def _wait_for_agent(stack: Stack, user: SimulatedUser) -> None:
    """Wait for the dispatched agent; if it never comes, fail saying what the dispatch did.

    A dispatch whose state lists no job means livekit-server found no worker to take it (e.g.
    a worker reporting too high a load); one with a job means the job process never joined.
    """
    try:
        await user.wait_for_agent(timeout=AGENT_TIMEOUT)
    except TimeoutError:
        lk = api.LiveKitAPI(stack.config.livekit.http_url, stack.api_key, stack.api_secret)
        try:
            dispatches = await lk.agent_dispatch.list_dispatch(user.room.name)
        finally:
            await lk.aclose()
        raise AssertionError(
            f"no agent joined room {user.room.name} within {AGENT_TIMEOUT:.0f}s; "
            f"its dispatches: {[str(d) for d in dispatches]} (see the livekit-server log)"
        ) from None


async def wait_until_listening(user: SimulatedUser, timeout: float = TURN_TIMEOUT) -> StateChange:  # noqa: ASYNC109
    """The newest received state, once it is `listening`."""

    def check() -> StateChange | None:
        states = user.recording.states
        return states[-1] if states and states[-1].event.state == "listening" else None

    return await user.recording.wait_for(check, timeout, "the agent back to listening")


@contextlib.asynccontextmanager
async def conversation(
    stack: Stack,
    *,
    faqs: Sequence[Faq] = (),
    language: str = "en",
    token: str | None = None,
) -> AsyncIterator[Conversation]:
    """Join as a user (token from the token server, or `token` minted by the test), wait for
    the agent and for the end of its greeting, and leave at the end."""
    if token is None:
        user = await SimulatedUser.from_token_server(stack.token_url, language=language, faqs=faqs)
    else:
        user = SimulatedUser(stack.livekit_url, token, language=language)
    await user.connect()
    try:
        await _wait_for_agent(stack, user)
        speaking = await user.wait_for_state("speaking", timeout=TURN_TIMEOUT)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=TURN_TIMEOUT)
        greeting = await user.wait_for_transcript(speaker="agent", final=True, timeout=TURN_TIMEOUT)
        yield Conversation(user, user.room.name, greeting)
    finally:
        await user.aclose()


# --- RPC -------------------------------------------------------------------------------------


async def rpc_once(user: SimulatedUser, method: str, payload: str) -> str:
    """One `perform_rpc` to the agent, no retry: what a bad payload gets is the first answer."""
    agent = await user.wait_for_agent(AGENT_TIMEOUT)
    return await user.room.local_participant.perform_rpc(
        destination_identity=agent, method=method, payload=payload
    )


# --- states ----------------------------------------------------------------------------------


def states_after(user: SimulatedUser, seq: int, until_seq: int | None = None) -> list[StateChange]:
    return [
        s
        for s in user.recording.states
        if s.event.seq > seq and (until_seq is None or s.event.seq <= until_seq)
    ]


def collapse(states: Iterable[AgentState]) -> list[AgentState]:
    """Consecutive repeats merged (a repeated `listening` is legitimate, not a new state)."""
    out: list[AgentState] = []
    for state in states:
        if not out or out[-1] != state:
            out.append(state)
    return out


def agent_path(states: Sequence[StateChange]) -> list[AgentState]:
    """The states the agent went through, as the page can know them from the calls it received.

    Delivery collapses a burst to its newest state (docs/contract.md), so a call may follow a
    skipped `seq`; its `previous` then names the state it replaced, which the agent did go
    through (e.g. a `thinking` that lasted less than one call's round trip under load).
    """
    path: list[AgentState] = []
    last_seq: int | None = None
    for change in states:
        event = change.event
        skipped = last_seq is not None and event.seq > last_seq + 1
        if skipped and event.previous is not None and (not path or path[-1] != event.previous):
            path.append(event.previous)
        path.append(event.state)
        last_seq = event.seq
    return path


def assert_turn_order(start: AgentState, states: Sequence[StateChange]) -> None:
    """One answered turn: listening → thinking → speaking → listening, each once, in order.

    `start` is the state before the turn. Repeats of a state are allowed (collapsed); anything
    else (another state, a second thinking/speaking, speaking before thinking) is not. A state
    collapsed away in delivery counts when the next call's `previous` names it.
    """
    seen = collapse([start, *agent_path(states)])
    assert seen == ["listening", "thinking", "speaking", "listening"], seen


def assert_session_states_sane(user: SimulatedUser) -> None:
    """Every state RPC of the session: from the agent, valid, seq strictly increasing in
    arrival order (so nothing stale was delivered after a newer one), timestamps following seq,
    and `previous` equal to the state before whenever no seq was skipped."""
    states = user.recording.states
    assert states, "no state RPC received"
    assert user.recording.invalid_states == []
    agent = user.agent_identity
    assert all(s.caller == agent for s in states)
    seqs = [s.event.seq for s in states]
    assert seqs[0] >= 1
    assert all(b > a for a, b in itertools.pairwise(seqs)), f"stale or repeated: {seqs}"
    stamps = [s.event.timestamp for s in states]
    assert all(b >= a for a, b in itertools.pairwise(stamps)), stamps
    for before, after in itertools.pairwise(states):
        if after.event.seq == before.event.seq + 1:
            assert after.event.previous == before.event.state, (before.event, after.event)


# --- transcriptions --------------------------------------------------------------------------


def mic_track_sid(user: SimulatedUser) -> str:
    """The user's published microphone track, as the room reports it."""
    publications = user.room.local_participant.track_publications.values()
    pubs = [p for p in publications if p.kind == rtc.TrackKind.KIND_AUDIO]
    assert len(pubs) == 1, pubs
    return pubs[0].sid


def agent_audio_track_sid(user: SimulatedUser) -> str:
    agent = user.room.remote_participants[user.agent_identity or ""]
    pubs = [p for p in agent.track_publications.values() if p.kind == rtc.TrackKind.KIND_AUDIO]
    assert len(pubs) == 1, pubs
    return pubs[0].sid


def assert_one_final_per_segment(streams: Sequence[TranscriptStream]) -> dict[str, str]:
    """Each segment: every stream complete, exactly one final, and the final is its last.

    Returns each segment's final text.
    """
    finals: dict[str, str] = {}
    segments: dict[str, list[TranscriptStream]] = {}
    for s in streams:
        assert s.complete, s
        assert s.error is None, s
        assert s.segment_id, s.attributes
        segments.setdefault(s.segment_id, []).append(s)
    for segment, group in segments.items():
        flags = [s.final for s in group]
        assert flags.count(True) == 1, f"segment {segment}: finals {flags}"
        assert flags[-1], f"segment {segment}: a stream after the final {flags}"
        finals[segment] = group[-1].text
    return finals


# --- audio -----------------------------------------------------------------------------------


def audio_position(user: SimulatedUser) -> int:
    """Samples of agent audio received so far (the track is continuous, silence included)."""
    return int(user.agent_audio.samples.size)


def agent_audio_since(user: SimulatedUser, position: int) -> Int16Array:
    return user.agent_audio.samples[position:]


def voiced_between(user: SimulatedUser, start: float, end: float) -> int:
    """Non-silent agent audio frames that arrived between two `perf_counter` instants."""
    return sum(1 for m in user.recording.agent_audio_voiced if start < m.at.mono < end)


def _wav_bytes(samples: Int16Array) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


async def recognise(stack: Stack, samples: Int16Array, prompt: str) -> str:
    """The stand-in's offline recogniser on received agent audio.

    `prompt` is the vocabulary hint, as OpenAI's API takes it (Whisper, the default, does not
    use it; pocketsphinx builds a small language model from its sentences).
    """
    async with httpx.AsyncClient(timeout=120) as client:
        resp = await client.post(
            f"{stack.standin_url}/audio/transcriptions",
            files={"file": ("agent.wav", _wav_bytes(samples), "audio/wav")},
            data={"model": "gpt-4o-mini-transcribe", "language": "en", "prompt": prompt},
        )
    resp.raise_for_status()
    text = resp.json()["text"]
    assert isinstance(text, str)
    return text


async def synthesise(stack: Stack, text: str, language: str) -> Int16Array:
    """What the stand-in's TTS says for `text` with the voice and instructions the agent uses
    for `language`, as 48 kHz int16 (the rate the user receives)."""
    lang = get_language(language)
    async with httpx.AsyncClient(timeout=120) as client:
        resp = await client.post(
            f"{stack.standin_url}/audio/speech",
            json={
                "model": "gpt-4o-mini-tts",
                "voice": lang.tts_voice,
                "input": text,
                "instructions": render_tts_instructions(lang),
                "response_format": "pcm",
            },
        )
    resp.raise_for_status()
    pcm = np.frombuffer(resp.content, dtype="<i2").astype(np.float64) / 32768.0
    return to_int16(resample(pcm, 24_000, SAMPLE_RATE))


def _voice_profile(samples: Int16Array) -> npt.NDArray[np.float64]:
    """Long-term average spectrum of the voiced frames: mean log energy in 40 log-spaced bands
    from 100 Hz to 8 kHz, level removed.

    It describes the voice and the sounds it makes, not their order in time, so the silence,
    gaps or lost packets of a received stream barely move it.
    """
    size, hop = 1024, SAMPLE_RATE // 100
    if samples.size < size:
        return np.zeros(40)
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), size)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2
    total = power.sum(axis=1)
    power = power[total > np.percentile(total, 95) * 1e-3]  # within 30 dB of the loud frames
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    pairs = itertools.pairwise(np.geomspace(100, 8000, 41))
    bands = np.stack(
        [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in pairs],
        axis=1,
    )
    profile: npt.NDArray[np.float64] = np.log10(bands + 1e-3).mean(axis=0)
    centred: npt.NDArray[np.float64] = profile - profile.mean()
    return centred


def voice_distance(received: Int16Array, reference: Int16Array) -> float:
    """RMS difference (in log10 units) between the voice profiles of two recordings."""
    diff = _voice_profile(received) - _voice_profile(reference)
    return float(np.sqrt(np.mean(diff * diff)))


_NON_WORD = re.compile(r"[^\w']+|_")


def normalize(text: str) -> str:
    """Case-folded words, punctuation dropped: how spoken text is compared."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def similarity(heard: str, expected: str) -> float:
    """0-100, rapidfuzz `ratio` (normalised Levenshtein) on the normalised word strings."""
    return float(fuzz.ratio(normalize(heard), normalize(expected)))


# --- logs and sockets ------------------------------------------------------------------------


def agent_log_lines(stack: Stack, room: str) -> list[str]:
    """The agent's log lines about one room (job records carry the room name, text or JSON)."""
    text = stack.services["agent"].log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if room in line]


def assert_loopback_only(stack: Stack) -> None:
    """No TCP or UDP socket of the stack (its services, their job processes) nor of this test
    process (the simulated users) is bound or connected off loopback, and the check saw live
    UDP sockets (WebRTC's), so it is not vacuous."""
    pids = [*stack.pids(), os.getpid()]
    assert off_loopback_sockets(pids) == []
    udp = 0
    for pid in pids:
        proc = psutil.Process(pid)
        for p in (proc, *proc.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                udp += sum(1 for c in p.net_connections(kind="udp"))
    assert udp > 0, "no UDP socket seen: the check would be vacuous"
