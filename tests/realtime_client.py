"""A raw client of the stand-in's realtime transcription WebSocket, for the unit tests (a
stand-in in a thread) and the e2e tests (the stack's stand-in): espeak-ng speech as the
protocol's PCM, and a socket that records every server event it receives."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from standin.realtime import INPUT_RATE

__all__ = [
    "CHUNK_MS",
    "RealtimeSocket",
    "append",
    "chunks",
    "realtime_socket",
    "said",
    "session_update",
    "speech_pcm",
]

CHUNK_MS = 50  # what the plugin sends


def speech_pcm(text: str, voice: str = "en-us", silence_s: float = 0.4) -> bytes:
    """espeak-ng speech as 24 kHz mono int16 with silence around it, at the simulated user's
    160 words a minute (tiny.en mishears espeak's hurried default 175 more often)."""
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "--stdout", text], capture_output=True, check=True
    ).stdout
    out = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(INPUT_RATE), "-e", "signed", "-b",
         "16", "-c", "1", "-"],
        input=raw, capture_output=True, check=True,
    ).stdout  # fmt: skip
    pad = b"\0" * int(silence_s * INPUT_RATE) * 2
    return pad + out + pad


def said(transcript: str) -> str:
    """The words of a transcript (Whisper writes case and punctuation, pocketsphinx does not)."""
    return " ".join(re.findall(r"[a-z']+", transcript.lower()))


def chunks(pcm: bytes) -> Iterator[bytes]:
    step = INPUT_RATE * CHUNK_MS // 1000 * 2
    for i in range(0, len(pcm), step):
        yield pcm[i : i + step]


def append(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def session_update(**audio_input: Any) -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": audio_input}},
    }


class RealtimeSocket:
    """A raw protocol client: every server event it received, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any] | str) -> None:
        if isinstance(event, str):
            await self.ws.send_str(event)
        else:
            await self.ws.send_json(event)

    async def next(self, kind: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, f"socket ended: {msg}"
                event: dict[str, Any] = json.loads(msg.data)
                self.events.append(event)
                if event["type"] == kind:
                    return event

    async def speak(self, pcm: bytes, *, realtime: bool = False) -> None:
        """Send `pcm` in 50 ms appends, paced like a microphone when `realtime`."""
        for chunk in chunks(pcm):
            await self.send(append(chunk))
            if realtime:
                await asyncio.sleep(CHUNK_MS / 1000)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


@asynccontextmanager
async def realtime_socket(
    base_url: str, query: str = "intent=transcription"
) -> AsyncIterator[RealtimeSocket]:
    """A socket to `<base_url>/realtime?<query>` (base_url: the stand-in's `.../v1`), open once
    the server said `session.created`."""
    url = base_url.replace("http", "ws", 1) + "/realtime?" + query
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        sock = RealtimeSocket(ws)
        await sock.next("session.created")
        yield sock
