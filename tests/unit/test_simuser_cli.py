"""The simulated user's command line and its printed/JSON report."""

from __future__ import annotations

import argparse
import json

import pytest

from common.protocol import AgentStateEvent
from devstack.sample_faqs import SAMPLE_FAQS
from simuser.cli import build_parser, parse_faq, session_faqs
from simuser.recording import (
    ParticipantEvent,
    Recording,
    RpcCall,
    Stamp,
    StateChange,
    TranscriptStream,
)
from simuser.report import format_timeline

pytestmark = pytest.mark.unit


def test_parse_faq_splits_on_the_first_bar() -> None:
    faq = parse_faq("Opening hours?|9 to 5 | weekdays")
    assert (faq.question, faq.answer) == ("Opening hours?", "9 to 5 | weekdays")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_faq("no answer")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_faq("|empty question")


def test_sample_faqs_come_first_then_each_faq() -> None:
    parser = build_parser()
    assert session_faqs(parser.parse_args(["--faq", "Q|A"]))[0].question == "Q"
    faqs = session_faqs(parser.parse_args(["--faq", "Q|A", "--sample-faqs"]))
    assert faqs[:-1] == list(SAMPLE_FAQS)
    assert faqs[-1].question == "Q"


def test_parser_collects_repeated_turns_and_faqs() -> None:
    args = build_parser().parse_args(
        ["--faq", "Q1|A1", "--faq", "Q2|A2", "--say", "hello", "--say", "q.wav", "--send-text", "x"]
    )
    assert [f.question for f in args.faq] == ["Q1", "Q2"]
    assert args.say == ["hello", "q.wav"]
    assert args.send_text == ["x"]
    assert args.language == "en"


def test_timeline_and_json_report_cover_every_kind_of_record() -> None:
    t0 = Stamp.now()
    rec = Recording(connected=t0)
    rec.participants.append(ParticipantEvent("present", "agent-1", t0))
    event = AgentStateEvent(state="listening", previous=None, seq=1, timestamp=t0.wall_ms - 3)
    rec.states.append(StateChange(event, "agent-1", t0.shifted(0.1)))
    rec.transcripts.append(
        TranscriptStream(
            participant="agent-1",
            stream_id="ST_1",
            attributes={"lk.transcribed_track_id": "TR_1", "lk.transcription_final": "true"},
            started=t0.shifted(0.2),
            text="We open at nine.",
            chunks=2,
            ended=t0.shifted(0.3),
        )
    )
    rec.rpc_calls.append(
        RpcCall("get_state", "{}", "agent-1", t0.shifted(0.4), t0.shifted(0.5), 3, response="{}")
    )
    lines = format_timeline(rec).splitlines()
    assert len(lines) == 4
    assert "present at join" in lines[0]
    assert "state #1 - -> listening" in lines[1]
    assert "final" in lines[2]
    assert "We open at nine." in lines[2]
    assert "[3 tries" in lines[3]
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["states"][0]["latency_ms"] == pytest.approx(
        t0.shifted(0.1).wall_ms - event.timestamp
    )
    assert data["transcripts"][0]["final"] is True
    assert format_timeline(Recording()) == "(nothing recorded)"


def test_parser_lets_the_greeting_finish_by_default() -> None:
    assert build_parser().parse_args([]).greeting_wait > 0
    assert build_parser().parse_args(["--greeting-wait", "0"]).greeting_wait == 0
