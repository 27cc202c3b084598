"""The stand-in's demo brain: retrieval over FAQ question + answer (and question alone),
precision-first declines."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from agent.prompts import render_instructions
from bench.understanding.dataset import load_sets
from common.languages import get_language
from common.metadata import Faq
from standin.app import build_brain
from standin.brain import Brain, Rule, adds_words, decide
from standin.embeddings import Similarities
from standin.settings import Settings

pytestmark = pytest.mark.unit

RULE = Rule(min_similarity=0.86, min_margin=0.025, lexical_threshold=95.0, near_edit=80.0)
# The same with the question view on: cosine to the FAQ's question >= 0.9, both views lead by 0.01.
RULE_Q = Rule(0.86, 0.025, 95.0, 80.0, min_question_similarity=0.9, min_question_margin=0.01)
# The understanding eval's own sets: one shared sample of FAQs, in English and in Spanish.
SETS = {s.id: s for s in load_sets()}
GYM = SETS["gym"].common_faqs
HOTEL_ES = SETS["hotel-es"].common_faqs
LIBRARY = SETS["library"].common_faqs


@pytest.fixture(scope="module")
def brain() -> Brain:
    """The brain as the stand-in builds it, with its default (tuned) rule."""
    built = build_brain(Settings())
    assert built.embedder is not None, "embedding engine not built: run `make bootstrap`"
    return built


def prompt(faqs: list[Faq], language: str = "en") -> str:
    return render_instructions(get_language(language), faqs)


@pytest.mark.parametrize(
    ("faqs", "question", "index"),
    [
        (GYM, "what's the monthly fee to join", 1),
        (GYM, "If I want to stop my membership, what do I have to do?", 4),
        (LIBRARY, "Anything going on for my little ones?", 5),
    ],
)
def test_standin_brain_answers_covered_paraphrase_with_that_faq_verbatim(
    brain: Brain, faqs: list[Faq], question: str, index: int
) -> None:
    reply = brain.answer(prompt(faqs), question)
    assert reply.matched == faqs[index]
    assert reply.text == faqs[index].answer  # verbatim, nothing added


def test_standin_brain_answers_each_faq_asked_in_its_own_words(brain: Brain) -> None:
    for faq in GYM:
        assert brain.answer(prompt(GYM), faq.question).text == faq.answer


@pytest.mark.parametrize(
    ("language", "opening"),
    [("en", "I don't know that one."), ("es", "Eso no lo sé."), ("fr", "Je ne sais pas")],
)
def test_standin_brain_declines_uncovered_in_session_language(
    brain: Brain, language: str, opening: str
) -> None:
    reply = brain.answer(prompt(GYM, language), "Can you tell me a joke about penguins?")
    assert reply.matched is None
    assert reply.text.startswith(opening)
    assert all(faq.answer not in reply.text for faq in GYM)


def test_standin_brain_answers_spanish_and_cross_language_questions(brain: Brain) -> None:
    pets = brain.answer(prompt(HOTEL_ES, "es"), "Quería saber si puedo ir con mi perro.")
    assert pets.matched == HOTEL_ES[3]
    loan = brain.answer(prompt(LIBRARY), "Combien de temps puis-je garder un livre ?")
    assert loan.matched == LIBRARY[1]


def test_standin_brain_without_faqs_says_so(brain: Brain) -> None:
    reply = brain.answer(prompt([]), "What are your opening hours?")
    assert reply.matched is None
    assert "no FAQs have been set" in reply.text


def test_standin_brain_embeds_each_faq_set_once(brain: Brain) -> None:
    assert brain.embedder is not None
    faqs = [Faq(question="Is there a sauna?", answer="Yes, the sauna is open every evening."), *GYM]
    before = brain.embedder.encoded_sets
    for question in ("Can I use the sauna?", "How much per month?", "Do you have towels?"):
        brain.answer(prompt(faqs), question)
    assert brain.embedder.encoded_sets == before + 1


@pytest.mark.parametrize(
    "text", ["", "   ", "\x00\x01", "?!", "a" * 50_000, "😀" * 300, "<faq_data>[]</faq_data>"]
)
def test_standin_brain_never_raises_on_odd_user_text(brain: Brain, text: str) -> None:
    reply = brain.answer(prompt(GYM), text)
    assert reply.text


def test_standin_brain_ignores_a_malformed_faq_block(brain: Brain) -> None:
    reply = brain.answer('<faq_data>[{"question": 1}]</faq_data>', "opening hours?")
    assert reply.matched is None
    assert reply.text


async def test_standin_brain_answer_async_runs_off_the_event_loop(brain: Brain) -> None:
    seen: list[int] = []
    assert brain.embedder is not None
    original = brain.embedder.similarities

    def spy(faqs: Sequence[Faq], text: str) -> Similarities:
        seen.append(threading.get_ident())
        return original(faqs, text)

    brain.embedder.similarities = spy  # type: ignore[method-assign]
    try:
        await brain.answer_async(prompt(GYM), "how much is it a month")
    finally:
        brain.embedder.similarities = original  # type: ignore[method-assign]
    assert seen
    assert seen[0] != threading.get_ident()


def _sims(*values: float) -> npt.NDArray[np.float32]:
    return np.asarray(values, np.float32)


def test_standin_brain_rule_needs_both_similarity_and_margin() -> None:
    assert decide(_sims(0.90, 0.80), [0, 0], RULE).index == 0
    assert decide(_sims(0.90, 0.89), [0, 0], RULE).index is None  # close runner-up
    assert decide(_sims(0.85, 0.70), [0, 0], RULE).index is None  # not close enough


def test_standin_brain_rule_question_view_answers_when_both_views_agree() -> None:
    # passage view too weak for the first rule (0.85 < 0.86), question view close: answered
    assert decide(_sims(0.85, 0.80), [0, 0], RULE_Q, None, _sims(0.92, 0.85)).how == "question"
    assert decide(_sims(0.85, 0.80), [0, 0], RULE_Q, None, _sims(0.85, 0.92)).index is None
    assert decide(_sims(0.85, 0.80), [0, 0], RULE_Q, None, _sims(0.89, 0.80)).index is None
    # a near tie in either view declines
    assert decide(_sims(0.85, 0.845), [0, 0], RULE_Q, None, _sims(0.92, 0.85)).index is None
    assert decide(_sims(0.85, 0.80), [0, 0], RULE_Q, None, _sims(0.92, 0.915)).index is None
    # off by default, and a near edit is still declined first
    assert decide(_sims(0.85, 0.80), [0, 0], RULE, None, _sims(0.92, 0.85)).index is None
    assert decide(_sims(0.85, 0.80), [85, 0], RULE_Q, None, _sims(0.92, 0.85)).how == "near_edit"


def test_standin_brain_embeds_faq_question_alone_as_query(brain: Brain) -> None:
    assert brain.embedder is not None
    sims = brain.embedder.similarities(GYM, GYM[2].question)
    assert int(np.argmax(sims.question)) == 2
    assert sims.question[2] > 0.99  # "query: " on both sides: the same text, the same vector
    assert sims.passage.shape == sims.question.shape == (len(GYM),)


def test_standin_brain_rule_lexical_needs_agreement_and_near_exact_wording() -> None:
    assert decide(_sims(0.90, 0.89), [97, 10], RULE).how == "lexical"
    assert decide(_sims(0.89, 0.90), [97, 10], RULE).index is None  # matchers disagree
    assert decide(_sims(0.90, 0.89), [90, 10], RULE).index is None
    assert decide(None, [97, 10], RULE).index == 0  # no embedder: lexical only


def test_standin_brain_rule_declines_a_near_edit_of_a_faq_question() -> None:
    assert decide(_sims(0.95, 0.80), [85, 10], RULE).how == "near_edit"
    assert decide(_sims(0.95, 0.80), [79, 10], RULE).how == "semantic"
    assert decide(_sims(0.95, 0.80), [96, 10], RULE).how == "semantic"
    # a word dropped (by the recogniser), none added: not a near-miss
    assert decide(_sims(0.95, 0.80), [85, 10], RULE, [False, True]).how == "semantic"


def test_standin_brain_declines_faq_question_with_a_word_changed(brain: Brain) -> None:
    reply = brain.answer(prompt(GYM), "How much is a yearly membership?")  # monthly is the FAQ
    assert reply.matched is None
    assert reply.decision.how == "near_edit"


def test_standin_brain_answers_faq_question_with_a_function_word_misheard(brain: Brain) -> None:
    """A recogniser's slip on a word that carries no meaning ("what's up" for "what are") is not
    a near-miss; a changed content word still is (the test above)."""
    assert adds_words("What's up your opening hours?", "What are your opening hours?") is False
    # the request framed differently, or its first words misheard into one ("well, tell ...")
    assert adds_words("Well, tell me your opening hours", "What are your opening hours?") is False
    assert adds_words("How much is a yearly membership?", "How much is a monthly membership?")
    reply = brain.answer(prompt(GYM), "What's up your opening hours?")
    assert reply.matched == GYM[0], reply.decision


@pytest.mark.parametrize(
    ("language", "faqs", "question", "index"),
    [
        ("en", GYM, "Hi, what are your opening hours please?", 0),
        ("es", HOTEL_ES, "Hola, ¿tienen aparcamiento, por favor?", 2),
    ],
)
def test_standin_brain_answers_faq_question_with_greeting_and_please(
    brain: Brain, language: str, faqs: list[Faq], question: str, index: int
) -> None:
    assert brain.answer(prompt(faqs, language), question).matched == faqs[index]


def test_standin_brain_sees_through_invisible_characters_and_accents(brain: Brain) -> None:
    """A FAQ question with a right-to-left override, a zero-width space, an emoji and a
    combining accent (as a hostile page may send; the agent strips only control characters)
    is still the question a user asks in plain words."""
    shop = Faq(
        question="\u202eWhere\u200b is \U0001f3ea the shop lo\u0301cated?[31m",
        answer="On Main Street twelve, next to the bakery.",
    )
    password = Faq(question="How do I reset my password?", answer="Click forgot password.")
    reply = brain.answer(prompt([shop, password], "pt-BR"), "Where is the shop located?")
    assert reply.matched == shop, reply.decision
