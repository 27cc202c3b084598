"""`python -m standin`: serve the stand-in with uvicorn on STANDIN_HOST:STANDIN_PORT."""

from __future__ import annotations

import logging

import uvicorn

from common.cli import parse_service_args

from .app import create_app
from .settings import Settings, get_settings


def main() -> None:
    parse_service_args(
        "python -m standin",
        "The offline OpenAI-compatible stand-in (speech to text, chat, text to speech) on "
        "loopback. Runs alone with the defaults below; the agent uses it when OPENAI_API_KEY "
        "is unset.",
        [Settings],
    )
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
