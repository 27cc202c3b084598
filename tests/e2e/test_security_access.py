"""Who may do what, and what never leaks: live checks against real processes.

- Identities starting with `agent` (any case) get no token from the running token server.
- A second participant in the user's room (an intruder whose token was minted with the API
  secret, not by the token server) is refused by every RPC method of the agent, and changes
  nothing.
- Token lifetimes: the token server's tokens carry `exp` = issue + TOKEN_TTL_SECONDS and are
  accepted by livekit-server now; that livekit-server refuses a token once `exp` has passed
  (after its fixed one-minute clock-skew leeway) is `tests/e2e/test_token_server_e2e.py::
  test_expired_token_refused` (waiting out TTL + leeway here would cost two idle minutes).
- No secret (LiveKit API secret, provider API key, the token server's shared key) ever appears in
  any service's log or in any HTTP or RPC answer, through a whole conversation.

A token for room A cannot join room B: `tests/e2e/test_token_server_e2e.py::
test_token_for_room_a_cannot_join_room_b` covers it against the real livekit-server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
import pytest
from livekit import api, rtc

from common.metadata import Faq
from common.protocol import (
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    RpcErrorCode,
)
from devstack.paths import LOG_DIR
from devstack.ports import free_tcp_port
from devstack.stack import Stack, StackConfig
from simuser import RpcCallError, SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FAQS = [
    Faq(
        question="What are your opening hours?",
        answer="We are open from nine to five, Monday to Friday.",
    ),
    Faq(question="How do I reset my password?", answer="Click forgot password on the login page."),
]
# livekit-server (livekit/protocol auth/verifier.go) accepts tokens up to a minute past `exp`.
LIVEKIT_EXPIRY_LEEWAY = 60.0


def _new_room() -> str:
    return f"avatar-{secrets.token_hex(6)}"


def mint(stack: Stack, room: str, identity: str, ttl: timedelta) -> str:
    """A plain join token minted with the API secret (no agent dispatch)."""
    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True
    )
    return (
        api.AccessToken(stack.api_key, stack.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(ttl)
        .to_jwt()
    )


async def validate(stack: Stack, token: str) -> int:
    """livekit-server's own pre-join check of a token: 200 or 401."""
    url = stack.livekit_url.replace("ws://", "http://") + "/rtc/validate"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params={"access_token": token}) as response,
    ):
        return response.status


# --- a 1 s token, checked at the start and (after the leeway) at the end of the module --------


@dataclass
class ShortLived:
    token: str
    claims: dict[str, Any]
    first_status: int
    refused: asyncio.Task[int]


async def _poll_until_refused(stack: Stack, token: str) -> int:
    while True:
        status = await validate(stack, token)
        if status != 200:
            return status
        await asyncio.sleep(1.0)


@pytest.fixture(scope="module")
async def short_lived(stack: Stack) -> AsyncIterator[ShortLived]:
    token = mint(stack, _new_room(), "user-short", timedelta(seconds=1))
    claims = jwt.decode(token, stack.api_secret, algorithms=["HS256"])
    # Checked at once, before the module's other tests.
    first = await validate(stack, token)
    task = asyncio.create_task(_poll_until_refused(stack, token))
    try:
        yield ShortLived(token, claims, first, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_one_second_token_is_accepted_while_fresh(short_lived: ShortLived) -> None:
    assert short_lived.claims["exp"] - short_lived.claims["nbf"] == 1
    assert short_lived.first_status == 200


# --- identities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["agent", "Agent", "AGENT-x", "agent-avatar", "aGeNt_1"])
async def test_running_token_server_refuses_agent_identities(stack: Stack, identity: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            stack.token_url, json={"room": _new_room(), "identity": identity}
        )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "identity"]
    assert "reserved for the agent" in error["msg"]
    assert "token" not in response.json()


# --- the agent's RPC methods are the room's user's only ---------------------------------------


async def test_a_second_participant_is_refused_by_every_rpc_method(stack: Stack) -> None:
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    assert user.grant is not None
    room = user.grant.room
    async with user:
        agent = await user.wait_for_agent(timeout=60)
        speaking = await user.wait_for_state("speaking", timeout=60)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=60)
        before = await user.get_state()

        calls = {
            RPC_SET_LANGUAGE: json.dumps({"language": "fr"}),
            RPC_SET_FAQS: json.dumps({"faqs": [{"question": "Hi?", "answer": "PWNED"}]}),
            RPC_SEND_TEXT: json.dumps({"text": "How do I reset my password?"}),
            RPC_INTERRUPT: "{}",
            RPC_GET_STATE: "{}",
        }
        refused: dict[tuple[str, str], int] = {}
        intruders = ["intruder-1", "Agent-impostor"]
        for identity in intruders:
            token = mint(stack, room, identity, timedelta(minutes=5))
            intruder = rtc.Room()
            await intruder.connect(stack.livekit_url, token)
            try:
                for method, payload in calls.items():
                    with pytest.raises(rtc.RpcError) as error:
                        await intruder.local_participant.perform_rpc(
                            destination_identity=agent, method=method, payload=payload
                        )
                    refused[(identity, method)] = error.value.code
                    assert error.value.message == f"{method}: only the room's user may call"
            finally:
                await intruder.disconnect()

        assert set(refused.values()) == {RpcErrorCode.FORBIDDEN}, refused
        assert len(refused) == len(intruders) * len(calls)
        # Nothing changed: same language and FAQs, and no state change since (no reply).
        after = await user.get_state()
        assert after == before
        assert after.state == "listening"
        # The user itself is still served.
        await user.send_text("What are your opening hours?")
        await user.wait_for_transcript(speaker="agent", contains="nine to five", timeout=60)
        answers = [t.text for t in user.transcripts(speaker="agent", final=True)]
        assert not any("forgot password" in text for text in answers), answers


# --- TTL ----------------------------------------------------------------------------------------

TTL = 60
FAKE_OPENAI_KEY = "sk-test-" + secrets.token_hex(24)
TOKEN_SERVER_KEY = "backend-" + secrets.token_hex(24)


@pytest.fixture(scope="module")
def secret_stack() -> Iterator[Stack]:
    """Known secrets everywhere; the provider key goes to the stand-in as a real key would."""
    env = {
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "TOKEN_SERVER_API_KEY": TOKEN_SERVER_KEY,
        "TOKEN_TTL_SECONDS": str(TTL),
        "RATE_LIMIT_PER_MINUTE": "1000",
        "AGENT_METRICS_PORT": str(free_tcp_port()),
        "LOG_LEVEL": "DEBUG",
    }
    with Stack(StackConfig(services=("standin", "token_server", "agent"), env=env)) as stack:
        yield stack


async def test_token_server_tokens_carry_exp_of_token_ttl_seconds_and_are_accepted(
    secret_stack: Stack,
) -> None:
    before = int(time.time())
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            secret_stack.token_url,
            json={"room": _new_room(), "identity": "user-ttl"},
            headers={"X-API-Key": TOKEN_SERVER_KEY},
        )
    after = int(time.time()) + 1
    assert response.status_code == 200, response.text
    body = response.json()
    claims = jwt.decode(
        body["token"], secret_stack.api_secret, algorithms=["HS256"], options={"verify_exp": True}
    )
    assert before + TTL <= claims["exp"] <= after + TTL
    assert claims["nbf"] <= after
    assert datetime.fromisoformat(body["expires_at"]).timestamp() == claims["exp"]
    # ... and the server takes it now (its own pre-join check).
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{secret_stack.livekit.config.http_url}/rtc/validate",
            params={"access_token": body["token"]},
        ) as validated,
    ):
        assert validated.status == 200, await validated.text()


# --- secrets ------------------------------------------------------------------------------------


@dataclass
class Seen:
    """Every answer a client got, as text."""

    texts: list[str]

    def add(self, label: str, value: Any) -> None:
        self.texts.append(f"{label}: {value}")


async def _http_answers(stack: Stack, seen: Seen) -> dict[str, Any]:
    metadata = {"language": "en", "faqs": [f.model_dump() for f in FAQS]}
    body = {"room": _new_room(), "identity": "user-secrets", "metadata": metadata}
    metrics_url = f"http://127.0.0.1:{stack.env['AGENT_METRICS_PORT']}/metrics"
    async with httpx.AsyncClient(timeout=10) as client:
        good = await client.post(
            stack.token_url, json=body, headers={"X-API-Key": TOKEN_SERVER_KEY}
        )
        others = [
            await client.post(stack.token_url, json=body),
            await client.post(stack.token_url, json=body, headers={"X-API-Key": "wrong"}),
            await client.post(
                stack.token_url,
                json={**body, "identity": "agent-x"},
                headers={"X-API-Key": TOKEN_SERVER_KEY},
            ),
            await client.post(
                stack.token_url,
                content=b"{",
                headers={"X-API-Key": TOKEN_SERVER_KEY, "Content-Type": "application/json"},
            ),
            await client.get(stack.token_url.replace("/api/token", "/healthz")),
            await client.get(stack.token_url.replace("/api/token", "/openapi.json")),
            await client.get(stack.agent_health_url),
            await client.get(stack.agent_health_url + "worker"),
            await client.get(stack.standin_url.removesuffix("/v1") + "/healthz"),
            await client.get(
                stack.standin_url + "/models",
                headers={"Authorization": f"Bearer {FAKE_OPENAI_KEY}"},
            ),
        ]
        for response in [good, *others]:
            seen.add(f"{response.request.method} {response.request.url}", response.status_code)
            seen.add("headers", dict(response.headers))
            seen.add("body", response.text)
    assert good.status_code == 200, good.text
    assert [r.status_code for r in others[:4]] == [401, 401, 422, 422]
    grant: dict[str, Any] = good.json()
    grant["metrics_url"] = metrics_url
    return grant


async def test_no_secret_in_any_log_or_answer(secret_stack: Stack) -> None:
    stack = secret_stack
    seen = Seen([])
    grant = await _http_answers(stack, seen)

    user = SimulatedUser(grant["url"], grant["token"], rpc_attempts=1)
    async with user:
        await user.wait_for_agent(timeout=60)
        speaking = await user.wait_for_state("speaking", timeout=60)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=60)
        await user.send_text("What are your opening hours?")
        answer = await user.wait_for_transcript(speaker="agent", contains="nine to five")
        seen.add("transcript", answer.text)
        seen.add("get_state", await user.get_state())
        for method, payload in [(RPC_SET_LANGUAGE, '{"language": 1}'), (RPC_SEND_TEXT, "{")]:
            with pytest.raises(RpcCallError) as error:
                await user.call(method, payload)
            seen.add(method, error.value)
        for state in user.recording.states:
            seen.add("state", state.event.model_dump_json())
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = await client.get(grant["metrics_url"])
    assert metrics.status_code == 200
    seen.add("metrics", metrics.text)

    logs = {path.name: path.read_text(errors="replace") for path in _stack_logs(stack)}
    assert {"agent", "token-server", "standin", "livekit-server"} <= {
        name.rsplit("-", 1)[0] for name in logs
    }, sorted(logs)
    secrets_by_name = {
        "LIVEKIT_API_SECRET": stack.api_secret,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "TOKEN_SERVER_API_KEY": TOKEN_SERVER_KEY,
        # a join token is a credential too: the token server must not log the ones it issues
        "issued token signature": grant["token"].rsplit(".", 1)[1],
    }
    for name, value in secrets_by_name.items():
        for log_name, text in logs.items():
            assert value not in text, f"{name} in {log_name}"
        if name != "issued token signature":
            for text in seen.texts:
                assert value not in text, f"{name} in an answer: {text[:200]}"


def _stack_logs(stack: Stack) -> list[Path]:
    return sorted(LOG_DIR.glob(f"*-{stack.config.livekit.port}.log"))


# --- the 1 s token, after the module's other tests ----------------------------------------------


async def test_a_one_second_token_is_refused_once_expired(
    short_lived: ShortLived, stack: Stack
) -> None:
    hang_guard = short_lived.claims["exp"] + LIVEKIT_EXPIRY_LEEWAY + 60 - time.time()
    status = await asyncio.wait_for(asyncio.shield(short_lived.refused), timeout=hang_guard)
    assert status == 401
    room = rtc.Room()
    try:
        with pytest.raises(rtc.ConnectError):
            await room.connect(stack.livekit_url, short_lived.token)
    finally:
        await room.disconnect()
