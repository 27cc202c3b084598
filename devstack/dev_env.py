"""`make dev`'s settings: which LiveKit to use and with which key and secret.

A loopback `LIVEKIT_URL` (or none) means the local livekit-server, signed with the secret
generated once into `.cache/dev.env` unless the user set one. Any other URL is a remote LiveKit
(Cloud or self-hosted): only the user's own key and secret can sign for it, so without them
`make dev` refuses, in one line, rather than hand out tokens that the server would reject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlparse

from .livekit_server import LiveKitServerConfig

__all__ = [
    "DEFAULT_LIVEKIT_URL",
    "DevConfigError",
    "LiveKitTarget",
    "is_loopback_url",
    "livekit_target",
]

DEFAULT_LIVEKIT_URL = "ws://127.0.0.1:7880"
DEFAULT_API_KEY = "devkey"


class DevConfigError(RuntimeError):
    """The environment asks for something `make dev` must not do; the message says what to set."""


@dataclass(frozen=True)
class LiveKitTarget:
    """The LiveKit of a dev run: the local server's config, and the URL everyone uses."""

    server: LiveKitServerConfig
    url: str
    run_local: bool


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def livekit_target(
    user_env: Mapping[str, str], generated_secret: Callable[[], str]
) -> LiveKitTarget:
    """Decide from the user's settings (environment over `.env`, empty values dropped);
    `generated_secret` is called only when the local server needs it."""
    url = user_env.get("LIVEKIT_URL") or DEFAULT_LIVEKIT_URL
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.hostname:
        raise DevConfigError(
            f"LIVEKIT_URL {url!r} is not a LiveKit URL: use ws://127.0.0.1:7880 (local) "
            "or wss://<project>.livekit.cloud"
        )
    key = user_env.get("LIVEKIT_API_KEY")
    secret = user_env.get("LIVEKIT_API_SECRET")
    if is_loopback_url(url):
        server = LiveKitServerConfig(
            port=parsed.port or 7880,
            api_key=key or DEFAULT_API_KEY,
            api_secret=secret or generated_secret(),
        )
        return LiveKitTarget(server=server, url=server.url, run_local=True)
    if not key or not secret:
        missing = [
            name
            for name, value in (("LIVEKIT_API_KEY", key), ("LIVEKIT_API_SECRET", secret))
            if not value
        ]
        raise DevConfigError(
            f"LIVEKIT_URL is {url} (not this machine) but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: put the project's key and secret "
            "(LiveKit Cloud: project Settings > Keys) in .env; make dev never signs for a remote "
            "server with its local secret"
        )
    server = LiveKitServerConfig(api_key=key, api_secret=secret)
    return LiveKitTarget(server=server, url=url, run_local=False)
