"""The running stack's stand-in speaks the realtime transcription protocol to any client.

Raw WebSocket clients against the stand-in the agent uses (the conversation tests cover the
agent's own socket): bad client events get OpenAI-style `error` events on a socket that keeps
working, and a client that leaves mid-utterance leaves no session behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest

from devstack.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RATE = 24000
QUESTION = "What are your opening hours?"
HINT = "What are your opening hours?\nHow do I reset my password?"


def speech_pcm(text: str) -> bytes:
    """espeak-ng at the simulated user's 160 words a minute, 24 kHz, half a second of silence
    around it."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text], capture_output=True, check=True
    ).stdout
    pcm = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16",
         "-c", "1", "-"],
        input=wav, capture_output=True, check=True,
    ).stdout  # fmt: skip
    pad = b"\0" * (RATE // 2) * 2
    return pad + pcm + pad


async def open_sessions(stack: Stack) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(stack.standin_url.removesuffix("/v1") + "/healthz")
    count: int = health.json()["realtime_sessions"]
    return count


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any] | str) -> None:
        await (self.ws.send_str(event) if isinstance(event, str) else self.ws.send_json(event))

    async def speak(self, pcm: bytes, *, paced: bool) -> None:
        step = RATE // 20 * 2  # 50 ms, as the plugin sends
        for i in range(0, len(pcm), step):
            chunk = base64.b64encode(pcm[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})
            if paced:
                await asyncio.sleep(0.05)

    async def next(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(30):
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                event: dict[str, Any] = json.loads(msg.data)
                if event["type"] == kind:
                    return event


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    url = stack.standin_url.replace("http", "ws", 1) + "/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        c = Client(ws)
        await c.next("session.created")
        await c.send(
            {"type": "session.update",
             "session": {"type": "transcription",
                         "audio": {"input": {"transcription": {"model": "gpt-realtime-whisper",
                                                               "prompt": HINT}}}}}
        )  # fmt: skip
        await c.next("session.updated")
        yield c


async def test_realtime_standin_bad_events_get_errors_and_the_socket_still_transcribes(
    client: Client,
) -> None:
    bad: list[tuple[dict[str, Any] | str, str]] = [
        ("{oops", "invalid_json"),
        ({"type": "conversation.item.create"}, "invalid_value"),
        ({"type": "input_audio_buffer.append", "audio": "!!"}, "invalid_value"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
    ]
    for event, code in bad:
        await client.send(event)
        error = await client.next("error")
        assert error["error"]["code"] == code, error
    await client.speak(speech_pcm(QUESTION), paced=True)
    await client.send({"type": "input_audio_buffer.commit"})
    completed = await client.next("conversation.item.input_audio_transcription.completed")
    # Whisper writes case and punctuation (pocketsphinx does not): compare the words.
    heard = re.findall(r"[a-z']+", completed["transcript"].lower())
    assert heard == ["what", "are", "your", "opening", "hours"]


async def test_realtime_standin_client_leaving_mid_utterance_leaves_no_session(
    stack: Stack,
) -> None:
    before = await open_sessions(stack)
    url = stack.standin_url.replace("http", "ws", 1) + "/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            c = Client(ws)
            await c.speak(speech_pcm(QUESTION + " " + QUESTION), paced=False)
            await c.next("conversation.item.input_audio_transcription.delta")
            assert await open_sessions(stack) == before + 1
        for _ in range(200):  # polled for up to ~20 s
            if await open_sessions(stack) <= before:
                break
            await asyncio.sleep(0.1)
        assert await open_sessions(stack) <= before, "a realtime session outlived its client"
