"""Token server configuration: one typed `BaseSettings` read from the environment and `.env`.

The names are the ones in `.env.example` (the LiveKit SDKs read the same `LIVEKIT_*` names).
Empty values count as unset, so the blank lines of a copied `.env.example` fall back to defaults
or fail loudly for the required secrets.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode

from common.validation import DOTENV_SETTINGS, describe_settings_error

__all__ = [
    "DEFAULT_ROOM_PREFIX",
    "MIN_SECRET_CHARS",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
]

DEFAULT_ROOM_PREFIX = "avatar"
# livekit-server flags shorter secrets and PyJWT warns on them (HS256 wants >= 256 bits).
MIN_SECRET_CHARS = 32
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Values copied from docs that must never reach a deployment.
_PLACEHOLDERS = {"xxx", "changethis", "your-api-key", "your-api-secret"}


class SettingsError(RuntimeError):
    """The environment does not describe a usable token server; the message says what to fix."""


class Settings(BaseSettings):
    model_config = DOTENV_SETTINGS

    livekit_url: str = Field(default="ws://127.0.0.1:7880", min_length=1)
    livekit_api_key: str = Field(min_length=1)
    livekit_api_secret: SecretStr
    agent_name: str = Field(default="avatar-agent", min_length=1, max_length=128)

    token_server_host: str = "127.0.0.1"
    token_server_port: int = Field(default=8080, ge=1, le=65535)
    room_prefix: str | None = None
    vite_room_prefix: str | None = None
    token_ttl_seconds: int = Field(default=900, ge=60, le=24 * 3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:5173", "http://localhost:5173"]
    )
    rate_limit_per_minute: int = Field(default=30, ge=1, le=100_000)
    # Set: every replica counts the rate limit in this Redis (redis:// or rediss://, password
    # in the URL); unset or unreachable: each process counts in its own memory.
    redis_url: SecretStr | None = None
    trust_proxy_headers: bool = False
    token_server_api_key: SecretStr | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://")):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("room_prefix", "vite_room_prefix")
    @classmethod
    def _valid_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX_RE.fullmatch(value):
            raise ValueError("must be 1-32 characters of A-Z a-z 0-9 _ -")
        return value

    @field_validator("livekit_api_key")
    @classmethod
    def _not_placeholder_key(cls, value: str) -> str:
        if value.lower() in _PLACEHOLDERS:
            raise ValueError("is a documentation placeholder; set the real key")
        return value

    @field_validator("livekit_api_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        return value

    @property
    def effective_room_prefix(self) -> str:
        """`ROOM_PREFIX`, else the frontend's `VITE_ROOM_PREFIX`, else `avatar`."""
        return self.room_prefix or self.vite_room_prefix or DEFAULT_ROOM_PREFIX


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising `SettingsError` with one line per problem (values never shown)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc, "token server")) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
