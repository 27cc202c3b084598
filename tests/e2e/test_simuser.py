"""The simulated user against a real livekit-server and a fake agent driven from the test.

The fake agent is a plain `rtc.Room` with identity `agent-test` and the agent kind: it calls the
user's `agent_state_changed`, registers the user's RPC methods (late, to exercise the retry), sends
`lk.transcription` text streams and publishes an audio track. No agent worker is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from livekit import api, rtc

from common.protocol import (
    RPC_AGENT_STATE_CHANGED,
    RPC_GET_STATE,
    TRANSCRIPTION_TOPIC,
    AgentState,
    AgentStateEvent,
    AgentStatus,
    RpcErrorCode,
)
from devstack.livekit_server import LiveKitServer
from simuser import RpcCallError, SimulatedUser, Stamp
from simuser.audio import SAMPLE_RATE, load_wav, rms, save_wav
from simuser.cli import build_parser
from simuser.cli import run as run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

AGENT_IDENTITY = "agent-test"


def mint(server: LiveKitServer, room: str, identity: str, *, agent: bool = False) -> str:
    grants = api.VideoGrants(room_join=True, room=room, agent=agent)
    token = (
        api.AccessToken(server.config.api_key, server.config.api_secret)
        .with_identity(identity)
        .with_grants(grants)
    )
    if agent:
        # What the agent framework's tokens say, and what simuser checks besides the prefix.
        token = token.with_kind("agent")
    return token.to_jwt()


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


@dataclass
class FakeAgent:
    room: rtc.Room
    joined: asyncio.Future[str]
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    heard_voiced_frames: int = 0

    def state(self, seq: int, state: AgentState, previous: AgentState | None) -> str:
        return AgentStateEvent(
            state=state, previous=previous, seq=seq, timestamp=time.time() * 1000
        ).model_dump_json()

    async def notify(self, user: str, payload: str) -> str:
        return await self.room.local_participant.perform_rpc(
            destination_identity=user, method=RPC_AGENT_STATE_CHANGED, payload=payload
        )


@dataclass
class Session:
    agent: FakeAgent
    user: SimulatedUser
    user_identity: str


@contextlib.asynccontextmanager
async def fake_agent_room(server: LiveKitServer, room_name: str) -> AsyncIterator[FakeAgent]:
    room = rtc.Room()
    joined: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    agent = FakeAgent(room=room, joined=joined)

    def on_join(participant: rtc.RemoteParticipant) -> None:
        if not joined.done():
            joined.set_result(participant.identity)

    async def listen(track: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        try:
            async for event in stream:
                data = np.frombuffer(event.frame.data, dtype=np.int16)
                if rms(data) > 500:
                    agent.heard_voiced_frames += 1
        finally:
            await stream.aclose()

    def on_track(
        track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if isinstance(track, rtc.RemoteAudioTrack):
            task = asyncio.create_task(listen(track))
            agent.tasks.add(task)
            task.add_done_callback(agent.tasks.discard)

    room.on("participant_connected", on_join)
    room.on("track_subscribed", on_track)
    await room.connect(server.config.url, mint(server, room_name, AGENT_IDENTITY, agent=True))
    try:
        yield agent
    finally:
        for task in list(agent.tasks):
            task.cancel()
        await asyncio.gather(*agent.tasks, return_exceptions=True)
        await room.disconnect()


@pytest.fixture
async def session(livekit_server: LiveKitServer) -> AsyncIterator[Session]:
    room_name = f"avatar-{secrets.token_hex(4)}"
    identity = f"user-{secrets.token_hex(4)}"
    async with fake_agent_room(livekit_server, room_name) as agent:
        user = SimulatedUser(livekit_server.config.url, mint(livekit_server, room_name, identity))
        await user.connect()
        try:
            yield Session(agent=agent, user=user, user_identity=identity)
        finally:
            await user.aclose()


async def test_simuser_receives_state_rpcs_in_order_from_the_first_call_after_join(
    session: Session,
) -> None:
    agent, user = session.agent, session.user
    joined = await asyncio.wait_for(agent.joined, 10)
    assert joined == session.user_identity
    # One try only, right after the join event: the handler must already be registered.
    assert await agent.notify(joined, agent.state(1, "listening", "initializing")) == ""

    sequence: list[tuple[AgentState, AgentState]] = [
        ("thinking", "listening"),
        ("speaking", "thinking"),
        ("listening", "speaking"),
    ]
    for seq, (state, previous) in enumerate(sequence, start=2):
        await agent.notify(joined, agent.state(seq, state, previous))

    final = await user.wait_for_state("listening", after_seq=1, timeout=5)
    assert final.event.seq == 4
    assert [s.event.seq for s in user.recording.states] == [1, 2, 3, 4]
    assert [s.event.state for s in user.recording.states] == [
        "listening",
        "thinking",
        "speaking",
        "listening",
    ]
    assert all(s.caller == AGENT_IDENTITY for s in user.recording.states)
    # Both clocks are recorded; the wall clock is comparable to the agent's timestamp.
    assert all(0 <= s.latency_ms < 5000 for s in user.recording.states)
    monos = [s.received.mono for s in user.recording.states]
    assert monos == sorted(monos)

    with pytest.raises(rtc.RpcError) as refused:
        await agent.notify(joined, '{"state": "dancing"}')
    assert refused.value.code == RpcErrorCode.INVALID_PAYLOAD
    assert len(user.recording.invalid_states) == 1
    assert user.agent_identity == AGENT_IDENTITY


async def test_simuser_records_transcription_streams_with_attributes(session: Session) -> None:
    agent, user = session.agent, session.user
    attributes = {
        "lk.transcribed_track_id": "TR_agent_audio",
        "lk.segment_id": "SG_1",
        "lk.transcription_final": "false",
    }
    writer = await agent.room.local_participant.stream_text(
        topic=TRANSCRIPTION_TOPIC, attributes=attributes
    )
    for chunk in ("We open ", "at nine ", "every day."):
        await writer.write(chunk)
    await writer.aclose(attributes={"lk.transcription_final": "true"})
    # A stream without a transcribed track id: recorded, but not a transcription.
    await agent.room.local_participant.send_text("not a transcript", topic=TRANSCRIPTION_TOPIC)

    stream = await user.wait_for_transcript(speaker="agent", final=True, timeout=5)
    assert stream.text == "We open at nine every day."
    assert stream.participant == AGENT_IDENTITY
    assert stream.chunks == 3
    assert stream.segment_id == "SG_1"
    assert stream.track_id == "TR_agent_audio"
    assert stream.final
    assert stream.ended is not None
    assert stream.ended.mono >= stream.started.mono

    await user.recording.wait_for(
        lambda: True if len(user.recording.transcripts) == 2 else None, 5, "second stream"
    )
    other = next(t for t in user.recording.transcripts if t is not stream)
    assert not other.is_transcription
    assert user.transcripts(speaker="agent") == [stream]
    assert user.transcripts(speaker="user") == []


async def test_simuser_rpc_retries_until_a_late_handler_is_registered(session: Session) -> None:
    agent, user = session.agent, session.user
    status = AgentStatus(state="listening", seq=3, language="en", faq_count=2)

    async def register_late() -> None:
        await asyncio.sleep(1.5)
        agent.room.local_participant.register_rpc_method(
            RPC_GET_STATE, lambda data: status.model_dump_json()
        )

    late = asyncio.create_task(register_late())
    try:
        assert await user.get_state() == status
    finally:
        await late
    call = user.recording.rpc_calls[-1]
    assert call.ok
    assert call.method == RPC_GET_STATE
    assert call.destination == AGENT_IDENTITY
    assert 2 <= call.attempts <= 10
    assert call.ended.since(call.started) >= 1.0


async def test_simuser_rpc_fails_after_ten_tries_with_the_last_code(session: Session) -> None:
    user = session.user
    started = time.perf_counter()
    with pytest.raises(RpcCallError) as failed:
        await user.call("no_such_method", {})
    assert failed.value.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD
    assert failed.value.attempts == 10
    assert time.perf_counter() - started >= 9 * 0.5
    call = user.recording.rpc_calls[-1]
    assert not call.ok
    assert call.error_code == 1400
    assert call.attempts == 10


async def test_simuser_microphone_reaches_the_agent_and_agent_audio_is_saved(
    session: Session, tmp_path: Path
) -> None:
    agent, user = session.agent, session.user
    # A 16 kHz WAV: the user converts it to 48 kHz mono before publishing.
    question = tmp_path / "question.wav"
    save_wav(question, tone(0.8, 16_000), rate=16_000)

    utterance = await user.say(question, lead_silence=0.2, trail_silence=0.2)
    assert utterance.speech_ended.since(utterance.speech_started) == pytest.approx(0.8, abs=0.03)
    assert utterance.speech_started.since(utterance.started) == pytest.approx(0.2, abs=0.03)
    assert utterance.ended.since(utterance.started) == pytest.approx(1.2, abs=0.1)
    for _ in range(50):
        if agent.heard_voiced_frames >= 20:
            break
        await asyncio.sleep(0.1)
    assert agent.heard_voiced_frames >= 20

    # The fake agent speaks: a tone after a moment of silence, on its own audio track.
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("agent-voice", source)
    await agent.room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    await user.recording.wait_for(
        lambda: user.recording.agent_audio_first_frame, 10, "agent audio track"
    )
    mark = Stamp.now()
    samples = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.int16), tone(0.6, SAMPLE_RATE)])
    for i in range(0, samples.size, 480):
        chunk = samples[i : i + 480]
        await source.capture_frame(rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, chunk.size))
    first = await user.first_agent_audio_after(mark, timeout=10)
    assert first.mono > mark.mono
    await source.wait_for_playout()
    await asyncio.sleep(0.3)

    saved = await user.save_agent_audio(tmp_path / "agent.wav")
    audio = load_wav(saved)
    assert audio.size > SAMPLE_RATE // 2
    assert rms(audio) > 500
    await source.aclose()


async def test_simuser_cli_runs_a_text_turn_and_writes_a_report(
    livekit_server: LiveKitServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    room_name = f"avatar-{secrets.token_hex(4)}"
    identity = f"user-{secrets.token_hex(4)}"
    async with fake_agent_room(livekit_server, room_name) as agent:

        async def answer(user: str) -> None:
            await agent.notify(user, agent.state(2, "thinking", "listening"))
            await agent.room.local_participant.send_text(
                "We open at nine.",
                topic=TRANSCRIPTION_TOPIC,
                attributes={
                    "lk.transcribed_track_id": "TR_x",
                    "lk.transcription_final": "true",
                    "lk.segment_id": "SG_1",
                },
            )
            await agent.notify(user, agent.state(3, "speaking", "thinking"))
            await agent.notify(user, agent.state(4, "listening", "speaking"))

        def on_send_text(data: rtc.RpcInvocationData) -> str:
            task = asyncio.create_task(answer(data.caller_identity))
            agent.tasks.add(task)
            task.add_done_callback(agent.tasks.discard)
            return '{"ok": true}'

        agent.room.local_participant.register_rpc_method("send_text", on_send_text)
        token = mint(livekit_server, room_name, identity)
        report = tmp_path / "report.json"
        argv = ["--url", livekit_server.config.url, "--token", token, "--send-text", "Hours?"]
        argv += ["--linger", "0", "--reply-timeout", "10", "--json-report", str(report)]
        argv += ["--greeting-wait", "0"]  # this fake agent does not greet
        args = build_parser().parse_args(argv)
        cli_run = asyncio.create_task(run_cli(args))
        user = await asyncio.wait_for(agent.joined, 10)
        await agent.notify(user, agent.state(1, "listening", "initializing"))
        assert await asyncio.wait_for(cli_run, 30) == 0

    out = capsys.readouterr().out
    assert "state #1 initializing -> listening" in out
    assert "rpc send_text" in out
    assert "'We open at nine.'" in out
    data = json.loads(report.read_text())
    assert data["problems"] == []
    assert data["turns"][0]["agent_text"] == "We open at nine."
    assert [s["seq"] for s in data["recording"]["states"]] == [1, 2, 3, 4]
