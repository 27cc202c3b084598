"""Schema fuzz of the token server's OpenAPI document with schemathesis: never a 5xx.

Positive and negative data (wrong types, missing and extra fields, odd headers) are generated
from the document itself, so the exact `<prefix>-<id>` room pattern in it lets valid cases reach
the minting code too. Bounded to keep the unit suite fast.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from token_server_fakes import FakeRooms

from token_server import create_app, load_settings

pytestmark = pytest.mark.unit

_APP = create_app(
    load_settings(
        livekit_api_key="fuzz-key",
        livekit_api_secret="fuzz-secret-0123456789-abcdefghijkl",
        rate_limit_per_minute=100_000,
        _env_file=None,
    ),
    rooms=FakeRooms(),
)
_CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261124,
        "generation": {"mode": "all", "max-examples": 100},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)


@schema.parametrize()
def test_token_server_schema_never_5xx(case: schemathesis.Case[Any]) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    case.validate_response(response, checks=[not_a_server_error])
