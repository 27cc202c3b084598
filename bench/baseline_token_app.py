"""Baseline for `bench.token_throughput`: an endpoint that only signs a fixed token.

`python -m bench.baseline_token_app` serves `POST /api/token` with uvicorn exactly as
`python -m token_server` does (same host/port variables, same key and secret), but reads no body,
validates nothing, rate-limits nothing and grants a fixed room: what is left is FastAPI, uvicorn
and one JWT signature. The difference to the real server is the cost of everything else.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from livekit.api import AccessToken, VideoGrants
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BaselineTokenSettings", "create_app", "main"]

logger = logging.getLogger(__name__)


class BaselineTokenSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    livekit_url: str = "ws://127.0.0.1:7880"
    livekit_api_key: str
    livekit_api_secret: SecretStr
    token_server_host: str = "127.0.0.1"
    token_server_port: int = 8080


def create_app(settings: BaselineTokenSettings) -> FastAPI:
    app = FastAPI(title="baseline token signer")
    secret = settings.livekit_api_secret.get_secret_value()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/token")
    async def token() -> dict[str, str]:
        jwt = (
            AccessToken(settings.livekit_api_key, secret)
            .with_identity("bench-user")
            .with_grants(VideoGrants(room_join=True, room="avatar-bench"))
            .with_ttl(timedelta(minutes=15))
            .to_jwt()
        )
        return {"token": jwt, "url": settings.livekit_url}

    return app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = BaselineTokenSettings()  # type: ignore[call-arg]  # from the environment
    uvicorn.run(
        create_app(settings),
        host=settings.token_server_host,
        port=settings.token_server_port,
        log_config=None,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
