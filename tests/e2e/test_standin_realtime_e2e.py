"""The running stack's stand-in speaks the realtime transcription protocol to any client.

Raw WebSocket clients against the stand-in the agent uses (the conversation tests cover the
agent's own socket): bad client events get OpenAI-style `error` events on a socket that keeps
working, and a client that leaves mid-utterance leaves no session behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from realtime_client import RealtimeSocket, realtime_socket, said, session_update, speech_pcm

from devstack.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

QUESTION = "What are your opening hours?"
HINT = "What are your opening hours?\nHow do I reset my password?"


async def open_sessions(stack: Stack) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(stack.standin_url.removesuffix("/v1") + "/healthz")
    count: int = health.json()["realtime_sessions"]
    return count


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[RealtimeSocket]:
    async with realtime_socket(stack.standin_url) as c:
        await c.send(
            session_update(transcription={"model": "gpt-realtime-whisper", "prompt": HINT})
        )
        await c.next("session.updated")
        yield c


async def test_realtime_standin_bad_events_get_errors_and_the_socket_still_transcribes(
    client: RealtimeSocket,
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
    await client.speak(speech_pcm(QUESTION, silence_s=0.5), realtime=True)
    await client.send({"type": "input_audio_buffer.commit"})
    completed = await client.next("conversation.item.input_audio_transcription.completed")
    assert said(completed["transcript"]) == "what are your opening hours"


async def test_realtime_standin_client_leaving_mid_utterance_leaves_no_session(
    stack: Stack,
) -> None:
    before = await open_sessions(stack)
    async with realtime_socket(stack.standin_url) as c:
        await c.speak(speech_pcm(QUESTION + " " + QUESTION, silence_s=0.5))
        await c.next("conversation.item.input_audio_transcription.delta")
        assert await open_sessions(stack) == before + 1
    for _ in range(200):  # polled for up to ~20 s
        if await open_sessions(stack) <= before:
            break
        await asyncio.sleep(0.1)
    assert await open_sessions(stack) <= before, "a realtime session outlived its client"
