#!/usr/bin/env bash
# Idempotent set-up shared by `make dev` and `make test`: Debian packages, the Python venv,
# the pinned livekit-server build and the playground's npm packages. Each step is skipped when
# what it installs is already there and up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=.cache
mkdir -p "$CACHE"
say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
APT_PACKAGES=(espeak-ng sox chromium iproute2 make redis-server)
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

# --- Python venv -------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  $PYTHON -m venv .venv
fi
stamp="$CACHE/pip.stamp"
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (pip, cached)"
  .venv/bin/python -m pip install -q --upgrade pip
  # Runtime packages pinned by the same lock as the Docker image; dev tools float within pyproject.
  .venv/bin/python -m pip install -q -e ".[dev]" -c requirements.lock --config-settings editable_mode=compat
  echo "$want" >"$stamp"
fi

# --- livekit-server (built from the Go module proxy, cached per version) -----------------------
.venv/bin/python -c "from devstack.livekit_server import ensure_livekit_server as e; e()"

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
