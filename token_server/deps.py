"""Request dependencies: settings, rate limit, shared-secret check, JSON content type.

All `async def` although none awaits: FastAPI runs plain `def` dependencies in a thread pool,
and four thread hops per request cost more than the checks themselves.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from .limiter import TokenRateLimit
from .settings import Settings

__all__ = [
    "API_KEY_HEADER",
    "AppSettings",
    "client_address",
    "limit_rate",
    "rate_limit_key",
    "require_api_key",
    "require_json",
]

API_KEY_HEADER = "X-API-Key"


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_app_settings)]


def client_address(request: Request, *, trust_proxy_headers: bool) -> str:
    if trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for", "")
        # The right-most entry was appended by our (trusted) proxy; the ones before it are
        # whatever the client claimed.
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.client.host if request.client else "unknown"


# One IPv6 customer gets a whole /64 (often far more): keyed per address, a client would rotate
# through 2^64 fresh buckets.
IPV6_RATE_LIMIT_PREFIX = 64


def rate_limit_key(address: str) -> str:
    """The bucket of a client address: an IPv4 address, or the /64 network of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown" or a test client's name: its own bucket
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        network = ipaddress.IPv6Network((ip, IPV6_RATE_LIMIT_PREFIX), strict=False)
        return str(network)
    return str(ip)


async def limit_rate(request: Request, settings: AppSettings) -> None:
    limiter: TokenRateLimit = request.app.state.rate_limiter
    key = rate_limit_key(client_address(request, trust_proxy_headers=settings.trust_proxy_headers))
    wait = await limiter.acquire(key)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many token requests; retry later",
            headers={"Retry-After": TokenRateLimit.retry_after_header(wait)},
        )


async def require_api_key(
    settings: AppSettings,
    x_api_key: Annotated[
        str | None,
        Header(
            alias=API_KEY_HEADER,
            description="required when the server sets TOKEN_SERVER_API_KEY",
        ),
    ] = None,
) -> None:
    expected = settings.token_server_api_key
    if expected is None:
        return
    given = (x_api_key or "").encode()
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=f"missing or invalid {API_KEY_HEADER} header"
        )


async def require_json(request: Request) -> None:
    # Without this FastAPI would hand the raw bytes to the model and answer a puzzling 422.
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Content-Type must be application/json",
        )
