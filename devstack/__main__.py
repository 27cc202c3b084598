"""`make dev`: run the whole stack locally on fixed ports until Ctrl-C.

livekit-server (loopback only), the offline stand-in when OPENAI_API_KEY is unset, the token
server, the agent worker in the framework's development mode (no hot reload: restart after a
code change) and the playground page. Settings come from the environment and an optional
`.env`; the local LiveKit secret is generated once into `.cache/dev.env`. A remote LIVEKIT_URL
(LiveKit Cloud) replaces the local server and needs its own key and secret (`dev_env`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from dotenv import dotenv_values

from common.cli import parse_service_args

from .dev_env import DevConfigError, livekit_target
from .foreground import run_until_stopped
from .livekit_server import generate_api_secret
from .paths import CACHE_DIR, LOG_DIR, REPO_ROOT
from .stack import SERVICE_NAMES, ServiceName, Stack, StackConfig, StackPorts

logger = logging.getLogger("devstack")

_DEV_ENV = CACHE_DIR / "dev.env"
_JSON = "Content-Type: application/json"
_SAMPLE = '{"room":"avatar-demo1234","identity":"user-1","metadata":{"language":"en"}}'


def _generated_secret() -> str:
    """The local server's secret, generated once into .cache/dev.env (mode 0600)."""
    generated = dotenv_values(_DEV_ENV) if _DEV_ENV.exists() else {}
    secret = generated.get("LIVEKIT_API_SECRET")
    if not secret:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        secret = generate_api_secret()
        _DEV_ENV.write_text(f"LIVEKIT_API_SECRET={secret}\n")
        _DEV_ENV.chmod(0o600)
    return secret


def _user_environment() -> dict[str, str]:
    """os.environ over .env, empty values dropped."""
    env: dict[str, str] = {k: v for k, v in dotenv_values(REPO_ROOT / ".env").items() if v}
    env.update({k: v for k, v in os.environ.items() if v})
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


_NOTES = """what runs (fixed ports, all on 127.0.0.1):
  livekit-server    7880 (from LIVEKIT_URL; not started when it points elsewhere)
  stand-in          STANDIN_PORT (8787), only when OPENAI_API_KEY is unset
  token server      TOKEN_SERVER_PORT (8080)
  agent worker      health on AGENT_HTTP_PORT (8081)
  playground        PLAYGROUND_PORT (5173), once playground/dist is built
LIVEKIT_URL=wss://<project>.livekit.cloud uses LiveKit Cloud instead of the local server; it
needs that project's LIVEKIT_API_KEY and LIVEKIT_API_SECRET. Every other variable is in
.env.example and the README's configuration table. Logs go to .cache/logs/."""


def main() -> int:
    parse_service_args(
        "python -m devstack",
        "Run the whole avatar backend locally until Ctrl-C (what `make dev` runs after "
        "installing the prerequisites). Settings come from the environment and ./.env.",
        notes=_NOTES,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    user_env = _user_environment()
    try:
        target = livekit_target(user_env, _generated_secret)
    except DevConfigError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 2
    env = user_env
    ports = StackPorts(
        token_server=int(env.get("TOKEN_SERVER_PORT", 8080)),
        standin=int(env.get("STANDIN_PORT", 8787)),
        agent_http=int(env.get("AGENT_HTTP_PORT", 8081)),
        playground=int(env.get("PLAYGROUND_PORT", 5173)),
    )
    livekit = target.server
    run_livekit = target.run_local
    services: list[ServiceName] = list(SERVICE_NAMES)
    if not (REPO_ROOT / "playground" / "dist" / "index.html").exists():
        logger.warning("playground/dist is missing (run `make bootstrap`); not serving the page")
        services.remove("playground")

    wanted = [*vars(ports).values(), *([livekit.port] if run_livekit else [])]
    busy = [p for p in wanted if not _port_free(p)]
    if busy:
        logger.error("ports already in use: %s (another `make dev`?)", busy)
        return 1

    stack = Stack(
        StackConfig(
            livekit=livekit,
            livekit_url=target.url,
            ports=ports,
            services=tuple(services),
            use_standin=None,
            agent_mode="dev",
            agent_name=env.get("AGENT_NAME", "avatar-agent"),
            base_env=env,
            run_livekit=run_livekit,
        )
    )

    own_secret = "LIVEKIT_API_SECRET" in user_env
    secret_from = "your settings" if own_secret or not run_livekit else str(_DEV_ENV)
    brain = "offline stand-in at " + stack.standin_url if stack.uses_standin else "OpenAI"
    lines = [
        "",
        "  The avatar backend is running. Ctrl-C stops everything.",
        f"  Playground     {stack.playground_url if 'playground' in services else '(not built)'}",
        f"  Token endpoint {stack.token_url}",
        f"  LiveKit        {stack.livekit_url}  (key {stack.api_key}; secret from {secret_from})",
        f"  Speech + LLM   {brain}",
        f"  Agent          '{stack.config.agent_name}', health {stack.agent_health_url}",
        f"  Logs           {LOG_DIR}",
        "",
        f"  Try: curl -s -X POST {stack.token_url} -H '{_JSON}' -d '{_SAMPLE}'",
        "",
    ]
    logger.info("starting the stack (first run builds livekit-server; logs in %s)", LOG_DIR)
    run_until_stopped(stack, stack.services.values, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
