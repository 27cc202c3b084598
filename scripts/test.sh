#!/usr/bin/env bash
# README command 2: install what is missing, lint, then run every test (in a sealed network).
# Pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
bash scripts/lint.sh || exit 1
# Every test runs in the sealed network namespace (scripts/sealed.sh): no packet can leave it.
bash scripts/sealed.sh .venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit $rc
