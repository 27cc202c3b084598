# syntax=docker/dockerfile:1
#
# Production images (docs/deployment.md):
#   docker build -t avatar-agent .                                    # agent worker (default)
#   docker build --target token-server -t avatar-token-server .       # token server
# `lk agent create` / `lk agent deploy` build the default target on LiveKit Cloud.
#
# Shape of livekit-examples/agent-starter-python: multi-stage, the locked dependency layer
# first (`uv sync --locked` from uv.lock; it only rebuilds when the lock changes), each image
# installing only its own dependency group, model files fetched at build time with
# `download-files`, a non-root user at run time. Nothing secret is baked in: every credential
# comes from the environment at run time. The offline stand-in, devstack, tests and dev tools
# never enter the build context (.dockerignore) nor the image.

ARG PYTHON_VERSION=3.11

# --- base: shared environment of every stage -------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    HF_HOME=/opt/models/huggingface
WORKDIR /app

# --- uv: the pinned installer and the lock ---------------------------------------------------
FROM base AS uv
# uv from PyPI, the same version as scripts/bootstrap.sh installs.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1
COPY pyproject.toml uv.lock ./

# --- token-server-build: the token server's group only (no livekit-agents, onnxruntime, av) ----
FROM uv AS token-server-build
# Exactly the locked versions and hashes (--locked fails if uv.lock is stale); wheels only
# (--no-build), so no compiler is needed; the app is copied, not installed.
RUN uv sync --locked --no-build --no-install-project --no-default-groups --group token-server

# --- build: the agent's group, then the app, then the model files -----------------------------
FROM uv AS build
RUN uv sync --locked --no-build --no-install-project --no-default-groups --group agent
COPY common/ common/
COPY prompts/ prompts/
COPY agent/ agent/
# Every model the worker loads, fetched now so no model is downloaded at run time. The VAD and
# the turn detector of livekit-agents ship inside the wheels; anything a plugin does fetch lands
# under HF_HOME, which the agent image copies.
RUN mkdir -p "$HF_HOME" \
    && python -m agent download-files

# --- runtime: slim, non-root, read-only code ---------------------------------------------------
FROM base AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" app \
    && useradd --system --uid "${UID}" --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app
COPY common/ common/
ENV HOME=/home/app \
    LOG_FORMAT=json

# --- token-server: `docker build --target token-server` ---------------------------------------
FROM runtime AS token-server
COPY --from=token-server-build /opt/venv /opt/venv
COPY token_server/ token_server/
# Listen on all interfaces of the container (the name has TOKEN in it, no secret in it).
# hadolint ignore=DL3064
ENV TOKEN_SERVER_HOST=0.0.0.0 \
    TOKEN_SERVER_PORT=8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TOKEN_SERVER_PORT', '8080'), timeout=4)"]
CMD ["python", "-m", "token_server"]

# --- agent: the default target (last stage) ------------------------------------------------------
FROM runtime AS agent
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/models /opt/models
COPY prompts/ prompts/
COPY agent/ agent/
# Nothing may be fetched at run time; the health endpoint must be reachable from outside the
# container (orchestrator probes), not only on loopback.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    AGENT_HTTP_HOST=0.0.0.0 \
    AGENT_HTTP_PORT=8081 \
    AGENT_METRICS_PORT=9464
USER 10001:10001
EXPOSE 8081 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/' % os.environ.get('AGENT_HTTP_PORT', '8081'), timeout=4)"]
CMD ["python", "-m", "agent", "start"]
