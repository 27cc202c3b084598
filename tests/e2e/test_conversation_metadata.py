"""End to end: session metadata the token server would refuse still gives a working session.

The tokens are minted here with livekit-api (the token server validates strictly and would
answer 422), carrying the bad metadata both as participant metadata and in the room
configuration's agent dispatch, as the token server does with good metadata. The agent must fall
back to the documented defaults (English, no FAQs; a valid field is kept), log a warning that
names the problem, greet in English and answer honestly.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from importlib import resources

import pytest
from conversation_helpers import HOURS, TURN_TIMEOUT, agent_log_lines, conversation
from livekit import api
from pydantic import ValidationError

from agent.prompts import language_prompts
from common.metadata import SessionMetadata
from devstack.stack import Stack
from simuser import Stamp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _standin_no_faqs_reply() -> str:
    """The stand-in demo brain's honest reply when a session has no FAQs (English)."""
    raw = resources.files("standin").joinpath("data/replies.json").read_text(encoding="utf-8")
    reply = json.loads(raw)["en"]["no_faqs"]
    assert isinstance(reply, str)
    return reply


@dataclass(frozen=True)
class BadMetadata:
    metadata: str
    faq_count: int
    answer: str  # to HOURS.question
    warning: str | None  # a fragment of the agent's warning, None when none is due


CASES = {
    # The invalid field defaults, the valid one is kept.
    "unsupported-language": BadMetadata(
        json.dumps({"language": "xx", "faqs": [HOURS.model_dump()]}),
        faq_count=1,
        answer=HOURS.answer,
        warning="language: Value error, unsupported language 'xx'",
    ),
    "not-json": BadMetadata("not json", 0, _standin_no_faqs_reply(), "metadata is not JSON"),
    # Valid (the documented default of absent metadata): English, no FAQs, nothing to warn about.
    "empty-faqs": BadMetadata(json.dumps({"faqs": []}), 0, _standin_no_faqs_reply(), None),
}


def mint(stack: Stack, room: str, identity: str, metadata: str) -> str:
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=["microphone"],
        can_subscribe=True,
        can_publish_data=True,
    )
    dispatch = api.RoomAgentDispatch(agent_name=stack.config.agent_name, metadata=metadata)
    return (
        api.AccessToken(stack.api_key, stack.api_secret)
        .with_identity(identity)
        .with_metadata(metadata)
        .with_grants(grants)
        .with_room_config(api.RoomConfiguration(agents=[dispatch]))
        .to_jwt()
    )


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_bad_metadata_falls_back_to_documented_defaults(
    case: BadMetadata, stack: Stack
) -> None:
    if case.warning is not None:
        with pytest.raises(ValidationError):  # the token server would have refused it
            SessionMetadata.model_validate_json(case.metadata)
    room = f"avatar-{secrets.token_hex(4)}"
    token = mint(stack, room, f"user-{secrets.token_hex(4)}", case.metadata)
    async with conversation(stack, token=token) as talk:
        user = talk.user
        assert talk.greeting.text == language_prompts("en").greeting
        status = await user.get_state()
        assert (status.language, status.faq_count) == ("en", case.faq_count)

        sent = Stamp.now()
        await user.send_text(HOURS.question)
        answer = await user.wait_for_transcript(
            speaker="agent", final=True, after=sent, timeout=TURN_TIMEOUT
        )
        assert answer.text == case.answer

    logs = agent_log_lines(stack, room)
    used = f"session from dispatch metadata: language=en faqs={case.faq_count}"
    assert any(used in line for line in logs), logs
    warnings = [line for line in logs if "WARNING" in line and "metadata problems" in line]
    if case.warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1, warnings
        assert case.warning in warnings[0], warnings
