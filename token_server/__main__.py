"""`python -m token_server`: serve the token API with uvicorn on TOKEN_SERVER_HOST:PORT."""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import create_app
from .settings import SettingsError, get_settings


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise SystemExit(f"token_server: {exc}") from None
    uvicorn.run(
        create_app(settings),
        host=settings.token_server_host,
        port=settings.token_server_port,
        log_config=None,  # keep our logging setup
        proxy_headers=False,  # X-Forwarded-For is handled (or not) by TRUST_PROXY_HEADERS
    )


if __name__ == "__main__":
    main()
