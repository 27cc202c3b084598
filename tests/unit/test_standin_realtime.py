"""The stand-in's realtime transcription WebSocket: a raw protocol client and the LiveKit plugin.

The server runs in a thread on loopback (uvicorn, as in production); the clients are aiohttp's
WebSocket (the transport the plugin uses) and `livekit.plugins.openai.STT(use_realtime=True)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI
from livekit import rtc
from livekit.agents import stt as lk_stt
from livekit.plugins import openai as lk_openai
from livekit.plugins import silero
from realtime_client import (
    CHUNK_MS,
    chunks,
    realtime_socket,
    said,
    session_update,
    speech_pcm,
)
from realtime_client import RealtimeSocket as Socket
from threaded_server import serving

from standin.app import create_app
from standin.realtime import INPUT_RATE, RealtimeSessions
from standin.recognition import (
    PocketsphinxFactory,
    RecogniserFactory,
    StreamingRecogniser,
    stable_words,
)
from standin.settings import Settings
from standin.whisper import WhisperFactory

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

QUESTION = "What are your opening hours?"
HINT = "What are your opening hours?\nHow do I reset my password?\nDo you ship internationally?"


class CountingFactory:
    """A real recogniser factory, counting recognisers opened and closed."""

    def __init__(self, real: RecogniserFactory) -> None:
        self._real = real
        self.opened = 0
        self.closed = 0

    def open(self) -> StreamingRecogniser:
        stream = self._real.open()
        self.opened += 1
        real_close = stream.close

        def close() -> None:
            real_close()
            self.closed += 1

        stream.close = close  # type: ignore[method-assign]
        return stream


@dataclass
class Standin:
    url: str
    app: FastAPI
    factory: CountingFactory

    @property
    def sessions(self) -> RealtimeSessions:
        sessions: RealtimeSessions = self.app.state.realtime_sessions
        return sessions

    async def wait_idle(self) -> None:
        deadline = time.monotonic() + 20
        while self.sessions.open or self.factory.closed < self.factory.opened:
            assert time.monotonic() < deadline, "a realtime session outlived its socket"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module", params=["whisper", "pocketsphinx"])
def standin(request: pytest.FixtureRequest) -> Iterator[Standin]:
    """The stand-in with each recogniser: the protocol is the same whichever engine hears."""
    settings = Settings(_env_file=None, enable_faults=True, recogniser=request.param)  # type: ignore[call-arg]
    app = create_app(settings)
    real = app.state.recogniser_factory
    assert isinstance(real, WhisperFactory if request.param == "whisper" else PocketsphinxFactory)
    factory = CountingFactory(real)
    app.state.recogniser_factory = factory
    with serving(app) as url:
        yield Standin(url + "/v1", app, factory)


@pytest.fixture
async def socket(standin: Standin) -> AsyncIterator[Socket]:
    async with realtime_socket(standin.url, "intent=transcription&model=m") as sock:
        yield sock


async def test_realtime_deltas_arrive_while_audio_arrives_then_one_completed(
    socket: Socket,
) -> None:
    """Deltas come before the commit is even sent (incremental, not a batch decode at the
    end); they only append, and the completed transcript is the question."""
    await socket.send(session_update(transcription={"model": "m", "language": "en",
                                                    "prompt": HINT}))  # fmt: skip
    await socket.next("session.updated")
    await socket.speak(speech_pcm(QUESTION))
    first_delta = await socket.next("conversation.item.input_audio_transcription.delta")
    assert socket.of("input_audio_buffer.committed") == []
    await socket.send({"type": "input_audio_buffer.commit"})
    committed = await socket.next("input_audio_buffer.committed")
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    deltas = socket.of("conversation.item.input_audio_transcription.delta")
    assert said(completed["transcript"]) == "what are your opening hours"
    assert {d["item_id"] for d in deltas} == {first_delta["item_id"]} == {completed["item_id"]}
    assert committed["item_id"] == completed["item_id"]
    # The interim text is what the page shows while the user speaks; the final replaces it.
    # A partial may still mishear the word the buffer cut through (pocketsphinx's live search,
    # or Whisper's decode of a cut-off buffer: "what are you" before "your" was whole), so the
    # interim agrees with the final on its opening words and its last word is whatever was heard.
    interim = said("".join(d["delta"] for d in deltas)).split()
    final = said(completed["transcript"]).split()
    assert len(interim) >= 3
    assert interim[:2] == final[:2]
    assert len(deltas) >= 2
    assert socket.of("input_audio_buffer.speech_started") == []  # client-committed: no server VAD


async def test_realtime_server_vad_ends_the_utterance_itself(socket: Socket) -> None:
    """With `turn_detection` (server-endpointed models), silence after speech stops it, commits
    and completes; no client commit is sent."""
    await socket.send(
        session_update(
            transcription={"model": "gpt-4o-mini-transcribe", "prompt": HINT},
            turn_detection={"type": "server_vad", "silence_duration_ms": 300},
        )
    )
    await socket.speak(speech_pcm(QUESTION, silence_s=0.6))
    started = await socket.next("input_audio_buffer.speech_started")
    stopped = await socket.next("input_audio_buffer.speech_stopped")
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    assert started["item_id"] == stopped["item_id"] == completed["item_id"]
    assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"]
    assert said(completed["transcript"]) == "what are your opening hours"


async def test_realtime_second_utterance_gets_a_new_item(socket: Socket) -> None:
    await socket.send(session_update(transcription={"prompt": HINT}))
    items = []
    for text in (QUESTION, "Do you ship internationally?"):
        await socket.speak(speech_pcm(text))
        await socket.send({"type": "input_audio_buffer.commit"})
        items.append(await socket.next("conversation.item.input_audio_transcription.completed"))
    assert [said(i["transcript"]) for i in items] == [
        "what are your opening hours",
        "do you ship internationally",
    ]
    assert items[0]["item_id"] != items[1]["item_id"]
    assert socket.of("input_audio_buffer.committed")[1]["previous_item_id"] == items[0]["item_id"]


@pytest.mark.parametrize(
    ("bad", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ({"type": "response.create"}, "invalid_value", "type"),
        ({"no": "type"}, "invalid_value", "type"),
        ({"type": "input_audio_buffer.append", "audio": "%%%not-base64"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.append"}, "invalid_value", "audio"),
        ({"type": "input_audio_buffer.append", "audio": "AAAA"}, "invalid_value", "audio"),
        (session_update(format={"type": "audio/pcmu"}), "invalid_value",
         "session.audio.input.format"),
        ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value",
         "session.type"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
    ],
)  # fmt: skip
async def test_realtime_bad_client_event_gets_error_event_and_socket_survives(
    socket: Socket, bad: dict[str, Any] | str, code: str, param: str | None
) -> None:
    await socket.send(session_update(transcription={"prompt": HINT}))
    await socket.send(bad if isinstance(bad, str) else {**bad, "event_id": "evt_client_1"})
    error = await socket.next("error")
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["message"]
    if not isinstance(bad, str):
        assert error["error"]["event_id"] == "evt_client_1"
    # The same socket still transcribes.
    await socket.speak(speech_pcm(QUESTION))
    await socket.send({"type": "input_audio_buffer.commit"})
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    assert said(completed["transcript"]) == "what are your opening hours"


async def test_realtime_binary_frame_is_an_error_not_a_crash(socket: Socket) -> None:
    await socket.ws.send_bytes(b"\x00\x01")
    error = await socket.next("error")
    assert error["error"]["code"] == "invalid_value"
    await socket.send(session_update())
    await socket.next("session.updated")


async def test_realtime_non_english_session_hears_nothing(socket: Socket) -> None:
    await socket.send(session_update(transcription={"language": "es"}))
    await socket.speak(speech_pcm(QUESTION))
    await socket.send({"type": "input_audio_buffer.commit"})
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == ""
    assert socket.of("conversation.item.input_audio_transcription.delta") == []


async def test_realtime_silence_is_not_decoded(standin: Standin, socket: Socket) -> None:
    """A socket that only hears silence never opens a recogniser (no cost while nobody talks)."""
    opened = standin.factory.opened
    await socket.speak(b"\0" * INPUT_RATE * 2)
    await socket.send({"type": "input_audio_buffer.commit"})
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == ""
    assert standin.factory.opened == opened


async def test_realtime_injected_stt_fault_is_an_error_event(
    standin: Standin, socket: Socket
) -> None:
    async with aiohttp.ClientSession() as http:
        admin = standin.url.removesuffix("/v1") + "/admin/faults"
        resp = await http.post(admin, json={"target": "stt", "mode": "error", "count": 1})
        assert resp.status == 200
    await socket.send(session_update(transcription={"prompt": HINT}))
    await socket.speak(speech_pcm(QUESTION))
    await socket.send({"type": "input_audio_buffer.commit"})
    error = await socket.next("error")
    assert error["error"]["code"] == "injected_fault"
    assert socket.of("conversation.item.input_audio_transcription.completed") == []
    await socket.speak(speech_pcm(QUESTION))
    await socket.send({"type": "input_audio_buffer.commit"})
    completed = await socket.next("conversation.item.input_audio_transcription.completed")
    assert said(completed["transcript"]) == "what are your opening hours"


async def test_realtime_client_leaving_mid_utterance_leaves_nothing_running(
    standin: Standin,
) -> None:
    """The client drops while its speech is still being decoded: the session, its worker and
    its recogniser are all gone afterwards, and the server still serves the next client."""
    async with realtime_socket(standin.url) as sock:
        await sock.send(session_update(transcription={"prompt": HINT}))
        await sock.speak(speech_pcm(QUESTION + " " + QUESTION))
        await sock.next("conversation.item.input_audio_transcription.delta")
        assert len(standin.sessions.open) >= 1
    # closed without a commit, with audio still queued
    await standin.wait_idle()
    assert standin.factory.opened >= 1
    assert standin.factory.closed == standin.factory.opened
    async with realtime_socket(standin.url) as sock:
        await sock.speak(speech_pcm(QUESTION))
        await sock.send({"type": "input_audio_buffer.commit"})
        completed = await sock.next("conversation.item.input_audio_transcription.completed")
        assert completed["transcript"]
    await standin.wait_idle()


def test_stable_words_are_what_successive_hypotheses_share() -> None:
    assert stable_words("what are your are", "what are your opening") == ["what", "are", "your"]
    assert stable_words("", "what") == []
    # the newest word is never stable, even when repeated
    assert stable_words("how do i", "how do i") == ["how", "do"]


async def test_realtime_plugin_gives_interims_then_one_final(standin: Standin) -> None:
    """The LiveKit plugin's streaming path (`gpt-realtime-whisper`, client-committed with a
    VAD) against the stand-in: interim transcripts while the audio plays, then the final."""
    pcm = speech_pcm(QUESTION, silence_s=1.0)
    async with aiohttp.ClientSession() as http:
        stt = lk_openai.STT(
            model="gpt-realtime-whisper",
            language="en",
            prompt=HINT,
            use_realtime=True,
            base_url=standin.url,
            api_key="x",
            vad=silero.VAD.load(),
        )
        stt._session = http  # the plugin's own session needs a job's HTTP context
        stream = stt.stream()
        events: list[lk_stt.SpeechEvent] = []

        async def read() -> None:
            async for ev in stream:
                events.append(ev)
                if ev.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT:
                    return

        reader = asyncio.create_task(read())
        samples = INPUT_RATE * CHUNK_MS // 1000
        for chunk in chunks(pcm + b"\0" * INPUT_RATE * 2):
            frame = rtc.AudioFrame(chunk, INPUT_RATE, 1, len(chunk) // 2)
            assert frame.samples_per_channel <= samples
            stream.push_frame(frame)
            await asyncio.sleep(CHUNK_MS / 1000)
        await asyncio.wait_for(reader, 20)
        await stream.aclose()
        await stt.aclose()
    kinds = [e.type for e in events]
    interims = [e for e in events if e.type == lk_stt.SpeechEventType.INTERIM_TRANSCRIPT]
    final = events[-1]
    assert interims, kinds
    assert kinds.index(lk_stt.SpeechEventType.INTERIM_TRANSCRIPT) < kinds.index(
        lk_stt.SpeechEventType.FINAL_TRANSCRIPT
    )
    assert said(final.alternatives[0].text) == "what are your opening hours"
    assert kinds.index(lk_stt.SpeechEventType.START_OF_SPEECH) < kinds.index(
        lk_stt.SpeechEventType.INTERIM_TRANSCRIPT
    )
    await standin.wait_idle()
