from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast

import pytest
from livekit import rtc

from agent.user import choose_metadata, wait_for_user
from common.metadata import Faq

pytestmark = pytest.mark.unit

GOOD_ES = json.dumps({"language": "es", "faqs": [{"question": "Q?", "answer": "A."}]})
GOOD_FR = json.dumps({"language": "fr"})


def test_dispatch_metadata_comes_first() -> None:
    choice = choose_metadata(GOOD_ES, GOOD_FR)
    assert choice.source == "dispatch"
    assert choice.metadata.language == "es"
    assert choice.metadata.faqs == [Faq(question="Q?", answer="A.")]
    assert choice.problems == ()


@pytest.mark.parametrize("dispatch", [None, "", "   "])
def test_participant_metadata_is_the_fallback(dispatch: str | None) -> None:
    choice = choose_metadata(dispatch, GOOD_FR)
    assert (choice.source, choice.metadata.language) == ("participant", "fr")


def test_clean_participant_metadata_beats_broken_dispatch() -> None:
    choice = choose_metadata("{not json", GOOD_FR)
    assert choice.source == "participant"
    assert choice.metadata.language == "fr"
    assert any("not JSON" in p for p in choice.problems)


def test_nothing_at_all_means_defaults_with_a_problem() -> None:
    choice = choose_metadata(None, None)
    assert choice.source == "default"
    assert choice.metadata.language == "en"
    assert choice.metadata.faqs == []
    assert choice.problems


@pytest.mark.parametrize(
    ("raw", "language", "faq_count", "problem"),
    [
        ('{"language": "klingon"}', "en", 0, "language"),
        ('{"language": "de", "faqs": "nope"}', "de", 0, "faqs"),
        ('{"language": "it", "faqs": [{"question": "", "answer": "x"}]}', "it", 0, "faqs"),
        ('["a list"]', "en", 0, "list"),
        ('{"language": "pt-BR", "extra": 1}', "pt-BR", 0, "extra"),
    ],
)
def test_invalid_fields_default_and_are_named(
    raw: str, language: str, faq_count: int, problem: str
) -> None:
    choice = choose_metadata(raw, None)
    assert choice.metadata.language == language
    assert len(choice.metadata.faqs) == faq_count
    assert any(problem in p for p in choice.problems), choice.problems


class FakeParticipant:
    def __init__(self, identity: str, kind: int) -> None:
        self.identity = identity
        self.kind = kind


class FakeRoom:
    """What `wait_for_user` uses of `rtc.Room`: the participants and the join event."""

    def __init__(self) -> None:
        self.remote_participants: dict[str, FakeParticipant] = {}
        self.handlers: dict[str, Callable[[FakeParticipant], None]] = {}

    def on(self, event: str, handler: Callable[[FakeParticipant], None]) -> None:
        self.handlers[event] = handler

    def off(self, event: str, handler: Callable[[FakeParticipant], None]) -> None:
        del self.handlers[event]

    def join(self, participant: FakeParticipant) -> None:
        self.remote_participants[participant.identity] = participant
        self.handlers["participant_connected"](participant)


async def test_wait_for_user_gives_up_after_the_timeout() -> None:
    room = FakeRoom()
    assert await wait_for_user(cast(rtc.Room, room), timeout=0.01) is None
    assert room.handlers == {}


async def test_wait_for_user_returns_the_user_not_an_agent() -> None:
    room = FakeRoom()
    agent = FakeParticipant("agent-1", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
    user = FakeParticipant("user-1", rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)
    waiting = asyncio.ensure_future(wait_for_user(cast(rtc.Room, room), timeout=30))
    await asyncio.sleep(0)
    room.join(agent)
    room.join(user)
    assert await waiting is user
