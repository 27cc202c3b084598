"""End to end by voice: a simulated user talks to the real agent over the real livekit-server.

One user for the whole module (the shared `stack`: livekit-server, token server, agent worker,
offline stand-in). It asks an FAQ by voice (`answered_by_voice`, recorded once and checked by
several tests: text, audio, states, transcriptions), then barges in on a long answer, and the
module ends with session-wide checks while the conversation is still live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
from conversation_helpers import (
    HISTORY,
    HOURS,
    PASSWORD,
    TURN_TIMEOUT,
    Conversation,
    Int16Array,
    agent_audio_since,
    agent_audio_track_sid,
    assert_loopback_only,
    assert_one_final_per_segment,
    assert_session_states_sane,
    assert_turn_order,
    audio_position,
    collapse,
    conversation,
    mic_track_sid,
    normalize,
    recognise,
    similarity,
    states_after,
    voiced_between,
    wait_until_listening,
)

from devstack.stack import Stack
from simuser import StateChange, TranscriptStream, Utterance

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FAQS = [HOURS, PASSWORD, HISTORY]

# Recognising the agent's audio again: espeak-ng (TTS) -> Opus over WebRTC -> pocketsphinx, with
# every FAQ answer of the session as the vocabulary hint, so the recogniser has to pick the right
# sentence among them (and may mix them). Calibrated on this stack with rapidfuzz `ratio` on
# normalised words: an answer's own audio scored 88-100 (8 turns over 4 answers; pocketsphinx
# drops or repeats a short word now and then), while other answers, the greeting and an "I don't
# know" reply, recognised with the same hint, scored at most 44 against any answer. 75 sits
# well clear of both.
HEARD_THRESHOLD = 75.0


@dataclass
class VoiceTurn:
    before: StateChange
    question: Utterance
    answer: TranscriptStream
    done: StateChange
    audio: Int16Array


@pytest.fixture(scope="module")
async def talk(stack: Stack) -> AsyncIterator[Conversation]:
    async with conversation(stack, faqs=FAQS) as conv:
        await conv.user.publish_microphone()
        yield conv


@pytest.fixture(scope="module")
async def answered_by_voice(talk: Conversation) -> VoiceTurn:
    """The user asks HOURS out loud; everything until the agent listens again is recorded."""
    user = talk.user
    before = await wait_until_listening(user)
    position = audio_position(user)
    question = await user.say(HOURS.question, lead_silence=0.5, trail_silence=1.0)
    answer = await user.wait_for_transcript(
        speaker="agent", final=True, after=question.speech_started, timeout=TURN_TIMEOUT
    )
    speaking = await user.wait_for_state("speaking", after_seq=before.event.seq)
    done = await user.wait_for_state("listening", after_seq=speaking.event.seq)
    # The state RPC can overtake the last audio frames (jitter buffer): let them arrive.
    await asyncio.sleep(0.5)
    return VoiceTurn(before, question, answer, done, agent_audio_since(user, position))


async def test_voice_question_gets_the_faq_answer_as_text_and_as_audio(
    answered_by_voice: VoiceTurn, stack: Stack
) -> None:
    turn = answered_by_voice
    assert turn.answer.text == HOURS.answer
    assert turn.answer.final

    audio = turn.audio
    assert audio.size > 0
    assert np.abs(audio).max() > 1000, "no audible agent audio after the question"
    heard = await recognise(stack, audio, prompt="\n".join(f.answer for f in FAQS))
    scores = {f.question: similarity(heard, f.answer) for f in FAQS}
    assert scores[HOURS.question] >= HEARD_THRESHOLD, (heard, scores)
    assert max(scores, key=lambda q: scores[q]) == HOURS.question, (heard, scores)


async def test_voice_turn_states_go_listening_thinking_speaking_listening(
    answered_by_voice: VoiceTurn, talk: Conversation
) -> None:
    turn = answered_by_voice
    states = states_after(talk.user, turn.before.event.seq, until_seq=turn.done.event.seq)
    assert_turn_order(turn.before.event.state, states)
    # The agent started thinking only once the user had started speaking.
    thinking = next(s for s in states if s.event.state == "thinking")
    assert thinking.received.mono > turn.question.speech_started.mono


async def test_user_transcription_names_the_microphone_track_with_one_final(
    answered_by_voice: VoiceTurn, talk: Conversation
) -> None:
    user = talk.user
    mic = mic_track_sid(user)
    streams = user.transcripts(speaker="user", after=answered_by_voice.before.received)
    assert streams, "no transcription of the user's question"
    assert {s.participant for s in streams} == {user.identity}
    assert {s.track_id for s in streams} == {mic}
    finals = assert_one_final_per_segment(streams)
    assert len(finals) == 1, f"the question split into segments: {finals}"
    (text,) = finals.values()
    # The recogniser's words, not the agent's: close to the question (the hint helps a lot).
    assert similarity(text, HOURS.question) >= 80, text


async def test_user_interim_transcripts_arrive_while_speaking_then_one_final_replaces_them(
    answered_by_voice: VoiceTurn, talk: Conversation
) -> None:
    """Streaming recognition: the page sees the user's words while they are still talking,
    as interim streams of one segment on the microphone track, then exactly one final."""
    user = talk.user
    question = answered_by_voice.question
    streams = user.transcripts(speaker="user", after=answered_by_voice.before.received)
    interims = [s for s in streams if not s.final]
    assert interims, "no interim transcript of the user's question"
    assert {s.segment_id for s in streams} == {interims[0].segment_id}
    assert {s.track_id for s in streams} == {mic_track_sid(user)}
    finals = assert_one_final_per_segment(streams)
    assert len(finals) == 1
    # The first interim reached the page before the user had finished the question.
    assert interims[0].started.mono < question.speech_ended.mono
    # Each interim carries the full text so far: the final's opening words.
    (final_text,) = finals.values()
    assert normalize(interims[-1].text).split()[:2] == normalize(final_text).split()[:2]


async def test_agent_transcription_names_its_audio_track_with_one_final(
    answered_by_voice: VoiceTurn, talk: Conversation
) -> None:
    user = talk.user
    agent_track = agent_audio_track_sid(user)
    streams = user.transcripts(speaker="agent")
    assert {s.participant for s in streams} == {user.agent_identity}
    assert {s.track_id for s in streams} == {agent_track}
    finals = assert_one_final_per_segment(streams)
    assert talk.greeting.segment_id in finals
    assert finals[answered_by_voice.answer.segment_id or ""] == HOURS.answer
    assert agent_track != mic_track_sid(user)


async def test_barge_in_by_voice_cuts_the_long_answer_and_answers_the_new_question(
    talk: Conversation,
) -> None:
    user = talk.user
    before = await wait_until_listening(user)
    question = await user.say(HISTORY.question, lead_silence=0.5, trail_silence=0.5)
    speaking = await user.wait_for_state("speaking", after_seq=before.event.seq)

    first_words = normalize(HISTORY.answer).split()[:5]

    def long_answer_under_way() -> TranscriptStream | None:
        for s in user.transcripts(speaker="agent", after=question.speech_started):
            if normalize(s.text).split()[:5] == first_words:
                return s
        return None

    # Barge in once five words of the ~16 s answer have been heard.
    long_answer = await user.recording.wait_for(long_answer_under_way, TURN_TIMEOUT, "it")
    assert not long_answer.complete
    barge_in = await user.say(PASSWORD.question, lead_silence=0.2, trail_silence=1.0)

    new_answer = await user.wait_for_transcript(
        speaker="agent", final=True, after=barge_in.speech_started, contains="forgot password"
    )
    assert new_answer.text == PASSWORD.answer
    stopped = await user.wait_for_state("listening", after_seq=speaking.event.seq)
    answering = await user.wait_for_state("speaking", after_seq=stopped.event.seq)
    done = await user.wait_for_state("listening", after_seq=answering.event.seq)

    # The agent stopped speaking because of the user: after they started talking.
    assert stopped.received.mono > barge_in.speech_started.mono
    # Its transcript of the long answer ended early, at a word boundary of the answer.
    assert long_answer.complete
    assert long_answer.final
    cut = normalize(long_answer.text)
    assert cut
    assert normalize(HISTORY.answer).startswith(cut)
    assert len(cut) < len(normalize(HISTORY.answer)) * 0.8, long_answer.text
    # Its audio stopped: silence from shortly after it left `speaking` until the new answer.
    assert answering.received.mono - stopped.received.mono > 0.5
    assert voiced_between(user, stopped.received.mono + 0.5, answering.received.mono) == 0

    # States: speaking (long) -> listening -> thinking -> speaking (new) -> listening.
    states = states_after(user, speaking.event.seq, until_seq=done.event.seq)
    seen = collapse(["speaking", *(s.event.state for s in states)])
    assert seen == ["speaking", "listening", "thinking", "speaking", "listening"], seen

    # The user's barge-in was transcribed as a question of its own, with one final.
    user_streams = user.transcripts(speaker="user", after=barge_in.started)
    finals = assert_one_final_per_segment(user_streams)
    assert any(similarity(t, PASSWORD.question) >= 80 for t in finals.values()), finals


async def test_session_state_rpcs_are_ordered_and_every_socket_stays_on_loopback(
    talk: Conversation, stack: Stack
) -> None:
    """Last in the module, while the conversation is still live."""
    user = talk.user
    assert user.room.isconnected()
    assert user.agent_identity is not None
    assert_session_states_sane(user)
    assert user.recording.states[0].event.state == "listening"
    assert_loopback_only(stack)
