"""Operating the agent: Prometheus metrics, the health endpoint and structured JSON logs.

One stack of its own (LOG_FORMAT=json, AGENT_METRICS_PORT set) and one conversation with a
spoken and a typed turn; the tests then read what an operator would: `/metrics` on the metrics
port, `/` and `/worker` on the health port, and the agent's log file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.metadata import Faq
from devstack.ports import free_tcp_port
from devstack.stack import Stack, StackConfig
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FAQS = [
    Faq(
        question="What are your opening hours?",
        answer="We are open from nine to five, Monday to Friday.",
    ),
    Faq(question="How do I reset my password?", answer="Click forgot password on the login page."),
]
OPENING_HOURS = "nine to five"


@dataclass(frozen=True)
class Observed:
    stack: Stack
    metrics_url: str
    room: str
    identity: str
    states_received: int


@pytest.fixture(scope="module")
def observed_stack() -> Iterator[tuple[Stack, str]]:
    port = free_tcp_port()
    env = {"LOG_FORMAT": "json", "AGENT_METRICS_PORT": str(port), "RATE_LIMIT_PER_MINUTE": "1000"}
    config = StackConfig(services=("standin", "token_server", "agent"), env=env)
    with Stack(config) as stack:
        yield stack, f"http://127.0.0.1:{port}/metrics"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of `name` over every label set that includes `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lb), v in found.items() if n == name and wanted <= set(lb))


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


@pytest.fixture(scope="module")
async def conversation(observed_stack: tuple[Stack, str]) -> Observed:
    """One session: greeting, a spoken and a typed question, then the user leaves."""
    stack, metrics_url = observed_stack
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    assert user.grant is not None
    async with user:
        await user.wait_for_agent(timeout=60)
        speaking = await user.wait_for_state("speaking", timeout=60)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=60)
        await user.publish_microphone()
        said = await user.say("What are your opening hours?", lead_silence=0.5, trail_silence=1.0)
        await user.wait_for_transcript(
            speaker="agent", contains=OPENING_HOURS, after=said.started, timeout=60
        )
        await user.send_text("How do I reset my password?")
        await user.wait_for_transcript(speaker="agent", contains="forgot password", timeout=60)
    states = len(user.recording.states)
    return Observed(stack, metrics_url, user.grant.room, user.grant.identity, states)


async def test_metrics_count_the_session_its_turns_and_their_latencies(
    conversation: Observed,
) -> None:
    # The job ends shortly after the user left; wait for the session's end to be counted.
    async with asyncio.timeout(90):
        while True:
            found = await scrape(conversation.metrics_url)
            if total(found, "avatar_agent_sessions_ended_total") >= 1:
                break
            await asyncio.sleep(0.5)
    # The stack is this module's own and ran exactly one session: every count is exact.
    assert total(found, "avatar_agent_sessions_started_total", language="en") == 1
    assert total(found, "avatar_agent_sessions_started_total") == 1
    assert total(found, "avatar_agent_sessions_ended_total") == 1
    assert total(found, "avatar_agent_sessions_active") == 0
    assert total(found, "avatar_agent_turns_total", role="user") == 2  # spoken + typed
    assert total(found, "avatar_agent_turns_total", role="agent") == 3  # greeting + 2 answers
    expected_counts = {
        "avatar_agent_end_of_turn_delay_seconds": 1,  # the spoken question only
        "avatar_agent_llm_ttft_seconds": 2,  # the two answers (the greeting is a fixed line)
        "avatar_agent_tts_ttfb_seconds": 3,  # greeting and two answers
    }
    for histogram, count in expected_counts.items():
        assert total(found, f"{histogram}_count") == count, histogram
        assert total(found, f"{histogram}_bucket", le="+Inf") == count, histogram
    # Speech-to-speech latency exists for the spoken question only.
    assert total(found, "avatar_agent_response_latency_seconds_count") == 1
    # Every state call the user's page received was counted as delivered, and only those.
    delivered = total(found, "avatar_agent_state_rpc_attempts_total", outcome="delivered")
    assert delivered == conversation.states_received
    assert total(found, "avatar_agent_state_rpc_attempts_total", outcome="refused") == 0


async def test_health_endpoint_and_worker_status(conversation: Observed) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(conversation.stack.agent_health_url)
        worker = await client.get(conversation.stack.agent_health_url + "worker")
    assert health.status_code == 200
    assert health.text == "OK"
    assert worker.status_code == 200
    assert worker.json()["agent_name"] == conversation.stack.config.agent_name


def test_agent_logs_are_json_lines_with_room_and_job_ids(conversation: Observed) -> None:
    lines = conversation.stack.services["agent"].log_path.read_text().splitlines()
    records: list[dict[str, Any]] = []
    started = False
    for number, line in enumerate(lines, 1):
        if not started:
            # The CLI's first lines come before the worker applies LOG_FORMAT.
            started = "starting worker" in line
            if not started:
                continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"agent log line {number} is not JSON: {line[:300]!r}")
    assert started, "no 'starting worker' line in the agent log"
    for record in records:
        # The framework's own JSON formatter names the logger `name`, ours `logger`.
        assert {"timestamp", "level", "message"} <= record.keys(), record
        assert record.get("logger") or record.get("name"), record
    ours = [r for r in records if r.get("room") == conversation.room]
    assert any(r["message"].startswith("session from dispatch metadata") for r in ours), ours
    for record in ours:
        assert record.get("job_id"), record
        assert record.get("room_id"), record
    assert any(r.get("user") == conversation.identity for r in ours)
    assert not [r for r in records if r.get("exc_info") or r["level"] in ("ERROR", "CRITICAL")]
