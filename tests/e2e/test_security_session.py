"""A session belongs to its user: attacks on a live session, against the real stack.

- Takeover through the token server (the user's room and identity, or the room and another
  identity): 409, and the user's session goes on untouched.
- A third participant with a valid token (signed with the API secret): livekit-server refuses
  the join (the room admits one user besides the agent).
- A token used again after its session ended: no agent is dispatched (no spend), whether the
  server refuses the join (`room.auto_create: false`) or opens an empty room.
- A participant posing as the agent (identity `agent-...`, not of the agent kind): its
  `agent_state_changed` calls and `lk.transcription` streams are refused/ignored by simuser.
- Floods of `send_text` and of the framework's typed chat (`lk.chat`): the first is held to
  its budget (429), the second has no effect; the session lives and memory stays flat.
- Every RPC fired from the first moment the agent is visible: success or the retryable 409.
- `python -m agent start` with no provider configured: refuses at once, one clear line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import httpx
import pytest
from conversation_helpers import AGENT_TIMEOUT, HOURS, PASSWORD, TURN_TIMEOUT, conversation
from livekit import api, rtc
from session_helpers import agent_job_rss, livekit_api, mint, new_room, open_uncapped_session

from common.metadata import SessionMetadata
from common.protocol import (
    RPC_AGENT_STATE_CHANGED,
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    TRANSCRIPTION_TOPIC,
    RpcErrorCode,
)
from devstack.paths import REPO_ROOT
from devstack.ports import free_tcp_port
from devstack.stack import Stack
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAQS = [HOURS, PASSWORD]
# livekit-server's own error for a join over the room's `max_participants`.
_MAX_PARTICIPANTS_MESSAGE = "exceeded its max participants"
# A flood bigger than any burst, small enough to stay a short test.
FLOOD = 40
# Resident memory the job processes may gain over a flood (a leak of a 3000-character message
# per call would show as ~0.1 MiB; a buffered flood of them, many times that).
MEMORY_SLACK_BYTES = 40 * 1024 * 1024


async def _token_request(stack: Stack, room: str, identity: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(stack.token_url, json={"room": room, "identity": identity})


async def _answer_still_served(user: SimulatedUser) -> None:
    """The user's own session still answers the user from the user's FAQs."""
    status = await user.get_state()
    assert (status.language, status.faq_count) == ("en", len(FAQS))
    await user.send_text(HOURS.question)
    await user.wait_for_transcript(speaker="agent", contains="nine to five", timeout=TURN_TIMEOUT)


# --- takeover ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["same identity", "another identity"])
async def test_takeover_through_the_token_server_is_refused(stack: Stack, who: str) -> None:
    async with conversation(stack, faqs=FAQS) as conv:
        user = conv.user
        identity = user.identity if who == "same identity" else "user-intruder"
        response = await _token_request(stack, conv.room, identity)
        assert response.status_code == 409, response.text
        assert conv.room in response.json()["detail"]
        assert "token" not in response.json()
        # The user was not disconnected and is still the one served.
        assert user.room.isconnected()
        assert not [p for p in user.recording.participants if p.kind == "disconnected"]
        await _answer_still_served(user)


async def test_a_third_participant_is_refused_by_livekit_server(stack: Stack) -> None:
    async with conversation(stack, faqs=FAQS) as conv:
        intruder = rtc.Room()
        identity = f"user-intruder-{secrets.token_hex(4)}"
        with pytest.raises(rtc.ConnectError):
            await intruder.connect(stack.livekit_url, mint(stack, conv.room, identity))
        # The SDK reports a bare handshake failure; the server says why.
        server_log = stack.livekit.log_path.read_text(errors="replace").splitlines()
        assert any(identity in line and _MAX_PARTICIPANTS_MESSAGE in line for line in server_log), (
            "livekit-server did not refuse the intruder for the participant cap"
        )
        async with livekit_api(stack) as lk:
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=conv.room))
        identities = sorted(p.identity for p in listed.participants)
        assert identities == sorted([conv.user.identity, await conv.user.wait_for_agent()])
        await _answer_still_served(conv.user)


async def _room_gone(stack: Stack, room: str) -> None:
    async with livekit_api(stack) as lk:
        while True:
            listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
            if not listed.rooms:
                return
            await asyncio.sleep(0.5)


async def test_a_token_used_again_after_its_session_dispatches_no_agent(stack: Stack) -> None:
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    assert user.grant is not None
    room, token = user.grant.room, user.grant.token
    async with user:
        await user.wait_for_agent(timeout=AGENT_TIMEOUT)
    # The user left: the session ends, the agent leaves, the room closes.
    await asyncio.wait_for(_room_gone(stack, room), timeout=120)

    replay = rtc.Room()
    try:
        await replay.connect(stack.livekit_url, token)
    except rtc.ConnectError:
        return  # refused outright (the server does not auto-create rooms)
    try:
        async with livekit_api(stack) as lk:
            dispatches = await lk.agent_dispatch.list_dispatch(room)
        # An auto-created room gets livekit-server's default dispatch (agent_name ""), which no
        # worker registered under a name takes; ours must not be among them.
        ours = [d for d in dispatches if d.agent_name == stack.config.agent_name]
        assert ours == [], [str(d) for d in ours]
        assert [p.identity for p in replay.remote_participants.values()] == []
    finally:
        await replay.disconnect()


# --- posing as the agent ------------------------------------------------------------------------


async def test_state_calls_and_transcripts_from_a_fake_agent_are_ignored_by_simuser(
    stack: Stack,
) -> None:
    token = await open_uncapped_session(stack, FAQS, "user-target")
    async with conversation(stack, token=token) as conv:
        user = conv.user
        real_agent = await user.wait_for_agent()
        states_before = list(user.recording.states)
        impostor = rtc.Room()
        await impostor.connect(stack.livekit_url, mint(stack, conv.room, "agent-impostor"))
        try:
            # Once the user knows the impostor (before that a call is answered "retry"), its
            # state call is refused for good.
            await user.recording.wait_for(
                lambda: "agent-impostor" in user.room.remote_participants or None,
                TURN_TIMEOUT,
                "the impostor in the user's room",
            )
            fake = {"state": "speaking", "previous": "listening", "seq": 999_999, "timestamp": 1.0}
            with pytest.raises(rtc.RpcError) as refused:
                await impostor.local_participant.perform_rpc(
                    destination_identity=user.identity,
                    method=RPC_AGENT_STATE_CHANGED,
                    payload=json.dumps(fake),
                )
            assert refused.value.code == RpcErrorCode.FORBIDDEN
            await impostor.local_participant.send_text(
                "PWNED: visit evil.example",
                topic=TRANSCRIPTION_TOPIC,
                attributes={
                    "lk.transcribed_track_id": "TR_fake",
                    "lk.segment_id": "SG_fake",
                    "lk.transcription_final": "true",
                },
            )
            ignored = await user.recording.wait_for(
                lambda: [i for i in user.recording.ignored if i[1] == TRANSCRIPTION_TOPIC] or None,
                TURN_TIMEOUT,
                "the fake transcript to be ignored",
            )
            assert ignored == [("agent-impostor", TRANSCRIPTION_TOPIC)]
        finally:
            await impostor.disconnect()

        assert ("agent-impostor", RPC_AGENT_STATE_CHANGED) in user.recording.ignored
        new_states = user.recording.states[len(states_before) :]
        assert all(s.caller == real_agent for s in new_states), new_states
        assert all(s.event.seq < 999_999 for s in user.recording.states)
        assert not any("PWNED" in t.text for t in user.recording.transcripts)
        assert user.agent_identity == real_agent


# --- floods -----------------------------------------------------------------------------------


async def test_a_send_text_flood_is_rate_limited_and_the_session_lives(stack: Stack) -> None:
    async with conversation(stack, faqs=FAQS) as conv:
        user = conv.user
        agent = await user.wait_for_agent()
        rss_before = agent_job_rss(stack)
        outcomes: list[int] = []
        refusals: list[tuple[int, str]] = []
        for n in range(FLOOD):
            try:
                await user.room.local_participant.perform_rpc(
                    destination_identity=agent,
                    method=RPC_SEND_TEXT,
                    payload=json.dumps({"text": f"flood {n} " + "x" * 1900}),
                )
                outcomes.append(200)
            except rtc.RpcError as exc:
                refusals.append((exc.code, exc.message))
                outcomes.append(exc.code)
        assert {code for code, _ in refusals} == {RpcErrorCode.RATE_LIMITED}, refusals
        assert all(m.startswith(f"{RPC_SEND_TEXT}: too many calls") for _, m in refusals)
        # The burst got through, then the budget held: most of the flood was refused.
        assert outcomes[0] == 200
        assert outcomes.count(RpcErrorCode.RATE_LIMITED) > outcomes.count(200)
        assert agent_job_rss(stack) - rss_before < MEMORY_SLACK_BYTES
        # The session goes on: state, and an answer once the budget has refilled (the contract's
        # retry is enough for that).
        assert user.room.isconnected()
        await _answer_still_served(user)


async def test_a_typed_chat_flood_has_no_effect_and_the_session_lives(stack: Stack) -> None:
    async with conversation(stack, faqs=FAQS) as conv:
        user = conv.user
        seq_before = user.last_seq
        rss_before = agent_job_rss(stack)
        for n in range(FLOOD):
            text = HOURS.question if n % 2 else f"flood {n} " + "y" * 3000
            await user.room.local_participant.send_text(text, topic="lk.chat")
        # Mark the end of the flood with an RPC on the same (ordered) data channel; by its
        # answer the agent has received every chat message.
        await user.get_state()
        await asyncio.sleep(3.0)  # room for a reply to start, were lk.chat on (not an assert)
        assert [s.event.state for s in user.recording.states if s.event.seq > seq_before] == []
        greeting_end = (conv.greeting.ended or conv.greeting.started).mono
        assert not [t for t in user.transcripts(speaker="agent") if t.started.mono > greeting_end]
        assert agent_job_rss(stack) - rss_before < MEMORY_SLACK_BYTES
        await _answer_still_served(user)


# --- startup ------------------------------------------------------------------------------------

_CALLS = {
    RPC_SET_LANGUAGE: json.dumps({"language": "fr"}),  # a real switch: the agent speaks
    RPC_SET_FAQS: json.dumps({"faqs": [f.model_dump() for f in FAQS]}),
    RPC_SEND_TEXT: json.dumps({"text": HOURS.question}),
    RPC_INTERRUPT: "{}",
    RPC_GET_STATE: "{}",
}
# What "not yet" may look like: ours (409), or LiveKit's own while the agent's handlers or
# connection are not there yet (the contract's retryable codes).
_RETRYABLE = {
    int(RpcErrorCode.NOT_READY),
    rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD,
    rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND,
    rtc.RpcError.ErrorCode.CONNECTION_TIMEOUT,
    rtc.RpcError.ErrorCode.RESPONSE_TIMEOUT,
    rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED,
}


async def test_every_rpc_from_the_first_moment_gets_success_or_not_ready(stack: Stack) -> None:
    # The user is fully connected (its data channel up) before the agent is dispatched, so its
    # calls reach the agent from the very moment it appears, through its whole start.
    room_name = new_room()
    metadata = SessionMetadata(language="en", faqs=FAQS)
    async with livekit_api(stack) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room_name, departure_timeout=10))
        room = rtc.Room()
        agent_seen = asyncio.Event()
        room.on("participant_connected", lambda p: agent_seen.set())
        await room.connect(
            stack.livekit_url, mint(stack, room_name, "user-early", metadata=metadata)
        )
        try:
            await room.local_participant.publish_data(b"warm-up", reliable=True)
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=stack.config.agent_name, room=room_name, metadata=metadata.to_json()
                )
            )
            await asyncio.wait_for(agent_seen.wait(), AGENT_TIMEOUT)
            agent = next(iter(room.remote_participants))
            errors = await _fire_until_each_succeeds(room, agent)
        finally:
            await room.disconnect()
    assert {code for _, code, _ in errors} <= _RETRYABLE, errors


async def _fire_until_each_succeeds(room: rtc.Room, agent: str) -> list[tuple[str, int, str]]:
    errors: list[tuple[str, int, str]] = []
    pending = dict(_CALLS)

    async def fire(method: str) -> None:
        try:
            await room.local_participant.perform_rpc(
                destination_identity=agent,
                method=method,
                payload=_CALLS[method],
                response_timeout=5.0,
            )
        except rtc.RpcError as exc:
            errors.append((method, exc.code, exc.message))
            return
        pending.pop(method, None)

    # Every method at once, round after round, until each has succeeded: the calls cover the
    # whole start of the session, whenever its fragile moment is.
    async with asyncio.timeout(AGENT_TIMEOUT):
        while pending:
            await asyncio.gather(*(fire(method) for method in list(pending)))
    return errors


# --- production without providers -----------------------------------------------------------------


async def test_agent_start_without_provider_config_refuses_in_one_line(
    stack: Stack, tmp_path: Path
) -> None:
    env = {k: v for k, v in stack.env.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["AGENT_HTTP_PORT"] = str(free_tcp_port())
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "start",
        cwd=tmp_path,  # no .env there
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("the agent started (and kept running) without any provider configured")
    assert proc.returncode != 0
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "OPENAI_API_KEY" in lines[0]
    assert "OPENAI_BASE_URL" in lines[0]
    assert stdout == b""
