#!/usr/bin/env bash
# One lint command: ruff (lint + format check) and mypy strict.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/hadolint Dockerfile
if [ -d playground/node_modules ]; then (cd playground && npm run --silent typecheck); fi
