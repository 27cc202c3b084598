"""`make dev`: run the whole stack locally on fixed ports until Ctrl-C.

livekit-server (loopback only), the offline stand-in when OPENAI_API_KEY is unset, the token server,
the agent worker in dev mode (hot reload) and the playground page. Settings come from the
environment and an optional `.env`; the LiveKit secret is generated once into `.cache/dev.env`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from urllib.parse import urlparse

from dotenv import dotenv_values

from .livekit_server import LiveKitServerConfig, generate_api_secret
from .paths import CACHE_DIR, LOG_DIR, REPO_ROOT
from .stack import SERVICE_NAMES, ServiceName, Stack, StackConfig, StackPorts

logger = logging.getLogger("devstack")

_DEV_ENV = CACHE_DIR / "dev.env"
_JSON = "Content-Type: application/json"
_SAMPLE = '{"room":"avatar-demo1234","identity":"user-1","metadata":{"language":"en"}}'


def _dev_environment() -> dict[str, str]:
    """os.environ over .env over the generated dev secret."""
    generated = dotenv_values(_DEV_ENV) if _DEV_ENV.exists() else {}
    if not generated.get("LIVEKIT_API_SECRET"):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        _DEV_ENV.write_text(f"LIVEKIT_API_SECRET={generate_api_secret()}\n")
        _DEV_ENV.chmod(0o600)
        generated = dotenv_values(_DEV_ENV)
    env: dict[str, str] = {k: v for k, v in generated.items() if v}
    env.update({k: v for k, v in dotenv_values(REPO_ROOT / ".env").items() if v})
    env.update({k: v for k, v in os.environ.items() if v})
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _is_loopback_url(url: str) -> bool:
    return (urlparse(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    env = _dev_environment()
    ports = StackPorts(
        token_server=int(env.get("TOKEN_SERVER_PORT", 8080)),
        standin=int(env.get("STANDIN_PORT", 8787)),
        agent_http=int(env.get("AGENT_HTTP_PORT", 8081)),
        playground=int(env.get("PLAYGROUND_PORT", 5173)),
    )
    livekit_url = env.get("LIVEKIT_URL", "ws://127.0.0.1:7880")
    run_livekit = _is_loopback_url(livekit_url)
    livekit = LiveKitServerConfig(
        port=urlparse(livekit_url).port or 7880,
        api_key=env.get("LIVEKIT_API_KEY", "devkey"),
        api_secret=env["LIVEKIT_API_SECRET"],
    )
    services: list[ServiceName] = list(SERVICE_NAMES)
    if not (REPO_ROOT / "playground" / "dist" / "index.html").exists():
        logger.warning("playground/dist is missing (run `make bootstrap`); not serving the page")
        services.remove("playground")

    busy = [p for p in (livekit.port, *vars(ports).values()) if not _port_free(p)]
    if busy and run_livekit:
        logger.error("ports already in use: %s (another `make dev`?)", busy)
        return 1

    stack = Stack(
        StackConfig(
            livekit=livekit,
            ports=ports,
            services=tuple(services),
            use_standin=None,
            agent_mode="dev",
            agent_name=env.get("AGENT_NAME", "avatar-agent"),
            base_env=env,
            run_livekit=run_livekit,
        )
    )

    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_stop)

    logger.info("starting the stack (first run builds livekit-server; logs in %s)", LOG_DIR)
    stack.start()
    brain = "offline stand-in at " + stack.standin_url if stack.uses_standin else "OpenAI"
    lines = [
        "",
        "  The avatar backend is running. Ctrl-C stops everything.",
        f"  Playground     {stack.playground_url if 'playground' in services else '(not built)'}",
        f"  Token endpoint {stack.token_url}",
        f"  LiveKit        {stack.livekit_url}  (key {stack.api_key}; secret in {_DEV_ENV})",
        f"  Speech + LLM   {brain}",
        f"  Agent          '{stack.config.agent_name}', health {stack.agent_health_url}",
        f"  Logs           {LOG_DIR}",
        "",
        f"  Try: curl -s -X POST {stack.token_url} -H '{_JSON}' -d '{_SAMPLE}'",
        "",
    ]
    print("\n".join(lines), flush=True)
    try:
        while not stopping:
            for service in stack.services.values():
                if not service.running:
                    logger.error("%s stopped unexpectedly; see %s", service.name, service.log_path)
                    stopping = True
            time.sleep(0.5)
    finally:
        logger.info("stopping the stack")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
