"""One job's conversation: its language and FAQs, and the agent that speaks them.

`Conversation` is the only place that changes the session's configuration mid-call (from RPC
methods and participant metadata updates): it re-renders the instructions, retunes STT and TTS
through a `SpeechSettings`, and speaks the fixed lines of `prompts/languages/*.toml`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from livekit.agents import Agent, AgentSession
from livekit.agents.voice import SpeechHandle

from common.languages import Language, get_language
from common.metadata import Faq

from .prompts import LanguagePrompts, language_prompts, render_instructions

__all__ = ["AvatarAgent", "Conversation", "SpeechSettings"]

logger = logging.getLogger(__name__)


class SpeechSettings(Protocol):
    """Retunes speech recognition and synthesis for a language (None in text-only sessions)."""

    def apply_language(self, language: Language) -> None: ...

    def apply_faqs(self, faqs: Sequence[Faq]) -> None: ...


class AvatarAgent(Agent):
    """The talking avatar: instructions from the prompt template; it greets first."""

    def __init__(self, *, language: Language, faqs: Sequence[Faq]) -> None:
        super().__init__(instructions=render_instructions(language, faqs))
        self._greeting = language_prompts(language.prompt).greeting

    async def on_enter(self) -> None:
        self.session.say(self._greeting)


class Conversation:
    def __init__(
        self,
        *,
        session: AgentSession[None],
        agent: Agent,
        language: Language,
        faqs: Sequence[Faq],
        speech: SpeechSettings | None = None,
    ) -> None:
        self._session = session
        self._agent = agent
        self._language = language
        self._faqs: tuple[Faq, ...] = tuple(faqs)
        self._speech = speech
        self._lock = asyncio.Lock()

    @property
    def language(self) -> Language:
        return self._language

    @property
    def language_code(self) -> str:
        return self._language.code

    @property
    def faqs(self) -> tuple[Faq, ...]:
        return self._faqs

    @property
    def faq_count(self) -> int:
        return len(self._faqs)

    @property
    def lines(self) -> LanguagePrompts:
        return language_prompts(self._language.prompt)

    @property
    def fallback_line(self) -> str:
        return self.lines.fallback

    @property
    def goodbye_line(self) -> str:
        return self.lines.idle_goodbye

    async def set_language(self, code: str) -> None:
        """Switch STT, TTS and instructions to `code`, then say so in the new language."""
        language = get_language(code)
        async with self._lock:
            if language == self._language:
                logger.info("language is already %s", language.code)
                return
            logger.info("switching language %s -> %s", self._language.code, language.code)
            self._language = language
            if self._speech is not None:
                self._speech.apply_language(language)
            await self._agent.update_instructions(render_instructions(language, self._faqs))
        await self.interrupt()
        self._session.say(self.lines.language_switched)

    async def set_faqs(self, faqs: Sequence[Faq]) -> None:
        async with self._lock:
            self._faqs = tuple(faqs)
            logger.info("FAQs replaced: %d entries", len(self._faqs))
            if self._speech is not None:
                self._speech.apply_faqs(self._faqs)
            await self._agent.update_instructions(render_instructions(self._language, self._faqs))

    async def send_text(self, text: str) -> None:
        """A typed message: stop talking and answer it like a spoken one."""
        await self.interrupt()
        self._session.generate_reply(user_input=text)

    async def interrupt(self) -> None:
        try:
            await self._session.interrupt()
        except RuntimeError as exc:
            # The current speech does not allow interruptions (or the session is closing).
            logger.info("interrupt not applied: %s", exc)

    def say_line(self, text: str, *, allow_interruptions: bool = True) -> SpeechHandle:
        """Speak a fixed line; it is not added to the LLM's chat history."""
        return self._session.say(
            text, allow_interruptions=allow_interruptions, add_to_chat_ctx=False
        )
