"""Property-based checks of the room and identity rules, on the model and through the route."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from token_server import create_app, load_settings
from token_server.models import TokenRequest, room_error, room_pattern

pytestmark = pytest.mark.unit

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
IDENTITY_CHARS = ID_CHARS + ".@:+="
room_ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=64)
prefixes = st.text(alphabet=ID_CHARS, min_size=1, max_size=32)
identities = st.text(alphabet=IDENTITY_CHARS, min_size=1, max_size=128).filter(
    lambda s: not s.lower().startswith("agent")
)
agent_case = st.tuples(*(st.sampled_from([c, c.upper()]) for c in "agent")).map("".join)

_CLIENT = TestClient(
    create_app(
        load_settings(
            livekit_api_key="k",
            livekit_api_secret="x" * 40,
            room_prefix="avatar",
            rate_limit_per_minute=100_000,
            _env_file=None,
        )
    )
)
_FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(prefix=prefixes, room_id=room_ids)
def test_room_rule_accepts_every_valid_room(prefix: str, room_id: str) -> None:
    assert room_error(f"{prefix}-{room_id}", prefix) is None
    assert re.fullmatch(room_pattern(prefix), f"{prefix}-{room_id}")


@given(prefix=prefixes, room_id=st.text(alphabet=ID_CHARS, min_size=65, max_size=100))
def test_room_rule_refuses_long_ids(prefix: str, room_id: str) -> None:
    assert room_error(f"{prefix}-{room_id}", prefix) is not None


def _room_candidates(prefix: str) -> st.SearchStrategy[str]:
    """Rooms around the rule's edges: valid ones, and ones a single flaw away from valid."""
    near_ids = st.text(alphabet=ID_CHARS + " .é/\x00", min_size=0, max_size=70)
    return st.one_of(
        st.text(max_size=120),
        st.builds(lambda i: f"{prefix}-{i}", room_ids),
        st.builds(lambda i: f"{prefix}-{i}", near_ids),
        st.builds(lambda h, i: f"{h}{prefix}-{i}", st.text(min_size=1, max_size=5), room_ids),
        st.builds(lambda i: f"{prefix}{i}", room_ids),
    )


@given(data=st.data(), prefix=prefixes)
def test_room_rule_matches_its_definition(data: st.DataObject, prefix: str) -> None:
    room = data.draw(_room_candidates(prefix), label="room")
    head, sep, room_id = room.partition(f"{prefix}-")
    valid = (
        head == "" and sep != "" and 1 <= len(room_id) <= 64 and all(c in ID_CHARS for c in room_id)
    )
    event("valid" if valid else "invalid")
    assert (room_error(room, prefix) is None) == valid


def test_room_rule_strategy_reaches_valid_and_invalid_rooms() -> None:
    """The property above is only worth something if its strategy produces both kinds."""
    seen: set[bool] = set()

    @settings(max_examples=200, database=None, deadline=None)
    @given(data=st.data(), prefix=prefixes)
    def probe(data: st.DataObject, prefix: str) -> None:
        room = data.draw(_room_candidates(prefix))
        seen.add(room_error(room, prefix) is None)

    probe()
    assert seen == {True, False}


@given(identity=identities)
def test_identity_rule_accepts_safe_non_agent(identity: str) -> None:
    assert TokenRequest.model_validate({"room": "r", "identity": identity}).identity == identity


@given(prefix=agent_case, rest=st.text(alphabet=IDENTITY_CHARS, max_size=100))
def test_identity_rule_refuses_agent_prefix_any_case(prefix: str, rest: str) -> None:
    with pytest.raises(ValidationError) as info:
        TokenRequest.model_validate({"room": "r", "identity": prefix + rest})
    assert info.value.errors()[0]["loc"] == ("identity",)


@given(
    identity=st.text(min_size=1, max_size=200).filter(
        lambda s: len(s) > 128 or any(c not in IDENTITY_CHARS for c in s)
    )
)
def test_identity_rule_refuses_unsafe_or_long(identity: str) -> None:
    with pytest.raises(ValidationError) as info:
        TokenRequest.model_validate({"room": "r", "identity": identity})
    assert info.value.errors()[0]["loc"] == ("identity",)


@_FAST
@given(room_id=room_ids, identity=identities)
def test_route_mints_for_any_valid_pair(room_id: str, identity: str) -> None:
    r = _CLIENT.post("/api/token", json={"room": f"avatar-{room_id}", "identity": identity})
    assert r.status_code == 200, r.text
    assert (r.json()["room"], r.json()["identity"]) == (f"avatar-{room_id}", identity)


@_FAST
@given(
    room=st.text(max_size=100).filter(lambda s: room_error(s, "avatar") is not None),
    identity=st.one_of(identities, agent_case),
)
def test_route_names_room_or_identity_on_any_invalid_pair(room: str, identity: str) -> None:
    r = _CLIENT.post("/api/token", json={"room": room, "identity": identity})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert locs
    assert all(loc in (["body", "room"], ["body", "identity"]) for loc in locs)
