"""`python -m token_server`: serve the token API with uvicorn on TOKEN_SERVER_HOST:PORT."""

from __future__ import annotations

import logging
import os

import uvicorn

from common.cli import parse_service_args

from .app import create_app
from .settings import Settings, SettingsError, get_settings

# Alone, nothing supplies the LiveKit credentials that `make dev` generates.
_ALONE_HINT = (
    "  set LIVEKIT_API_KEY and LIVEKIT_API_SECRET (32+ characters) in the environment or .env;\n"
    "  `make dev` uses the key devkey and the secret it generated into .cache/dev.env"
)


def main() -> None:
    parse_service_args(
        "python -m token_server",
        "The token server: POST /api/token returns a LiveKit join token that also dispatches "
        "the agent. LIVEKIT_API_KEY and LIVEKIT_API_SECRET are required (`make dev` passes "
        "its own); everything else has the default shown.",
        [Settings],
    )
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = get_settings()
    except SettingsError as exc:
        hint = f"\n{_ALONE_HINT}" if "LIVEKIT_API_" in str(exc) else ""
        raise SystemExit(f"token_server: {exc}{hint}") from None
    uvicorn.run(
        create_app(settings),
        host=settings.token_server_host,
        port=settings.token_server_port,
        log_config=None,  # keep our logging setup
        proxy_headers=False,  # X-Forwarded-For is handled (or not) by TRUST_PROXY_HEADERS
    )


if __name__ == "__main__":
    main()
