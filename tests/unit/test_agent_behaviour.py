"""The agent in a text-only `AgentSession` (no room, no audio) with a fake LLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from agent_fakes import NOT_FOUND, FaqFakeLLM
from livekit.agents import AgentSession, UserStateChangedEvent

from agent.conversation import AvatarAgent, Conversation
from agent.lifecycle import end_when_idle
from agent.prompts import language_prompts
from agent.tasks import BackgroundTasks
from common.languages import get_language
from common.metadata import Faq
from devstack.sample_faqs import HOURS, LOCATION

pytestmark = pytest.mark.unit

FAQS = [HOURS, LOCATION]


class Harness:
    def __init__(self, session: AgentSession[None], conversation: Conversation) -> None:
        self.session = session
        self.conversation = conversation

    def assistant_texts(self) -> list[str]:
        return [
            m.text_content or "" for m in self.session.history.messages() if m.role == "assistant"
        ]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    language = get_language("en")
    async with AgentSession(llm=FaqFakeLLM()) as session:
        agent = AvatarAgent(language=language, faqs=FAQS)
        conversation = Conversation(session=session, agent=agent, language=language, faqs=FAQS)
        await session.start(agent)
        yield Harness(session, conversation)


async def test_agent_greets_first_with_the_fixed_greeting() -> None:
    async with AgentSession(llm=FaqFakeLLM()) as session:
        agent = AvatarAgent(language=get_language("es-MX"), faqs=FAQS)
        result = await session.start(agent, capture_run=True)
        result.expect.skip_next_event_if(type="agent_handoff")
        greeting = result.expect.next_event().is_message(role="assistant")
        assert greeting.event().item.text_content == language_prompts("es").greeting
        result.expect.no_more_events()


async def test_question_in_the_faqs_is_answered_from_them(harness: Harness) -> None:
    result = await harness.session.run(user_input="When are you open, what are the opening hours?")
    message = result.expect.next_event().is_message(role="assistant")
    assert message.event().item.text_content == f"[en] {HOURS.answer}"
    result.expect.no_more_events()


async def test_question_outside_the_faqs_says_it_does_not_know(harness: Harness) -> None:
    result = await harness.session.run(user_input="Can I pay with bitcoin?")
    message = result.expect.next_event().is_message(role="assistant")
    assert message.event().item.text_content == f"[en] {NOT_FOUND}"
    result.expect.no_more_events()


async def test_language_switch_speaks_the_new_language_and_reinstructs(harness: Harness) -> None:
    await harness.conversation.set_language("fr")
    await asyncio.wait_for(harness.session.wait_for_idle(), timeout=5)
    assert harness.assistant_texts()[-1] == language_prompts("fr").language_switched
    result = await harness.session.run(user_input="Where is the shop located?")
    message = result.expect.next_event().is_message(role="assistant")
    assert message.event().item.text_content == f"[fr] {LOCATION.answer}"
    assert harness.conversation.language_code == "fr"


async def test_new_faqs_take_effect_on_the_next_answer(harness: Harness) -> None:
    await harness.conversation.set_faqs([Faq(question="Do you sell bitcoin?", answer="No.")])
    result = await harness.session.run(user_input="Can I buy bitcoin?")
    message = result.expect.next_event().is_message(role="assistant")
    assert message.event().item.text_content == "[en] No."


async def test_idle_user_gets_a_goodbye_and_the_session_ends(harness: Harness) -> None:
    tasks = BackgroundTasks()
    closed = asyncio.Event()
    said: list[str] = []
    harness.session.on("close", lambda _ev: closed.set())
    harness.session.on("speech_created", lambda ev: said.append(ev.source))
    end_when_idle(harness.session, harness.conversation, tasks)
    harness.session.emit(
        "user_state_changed", UserStateChangedEvent(old_state="listening", new_state="away")
    )
    await asyncio.wait_for(closed.wait(), timeout=5)
    assert said == ["say"]
    await tasks.aclose()
