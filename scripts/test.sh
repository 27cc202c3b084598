#!/usr/bin/env bash
# Test tiers. `test.sh` (README's `make test`, what CI runs): install what is missing, lint, then
# every test. `test.sh unit|e2e|browser [pytest args]`: one tier (`make unit` also lints and needs
# only the venv, no servers). Every run is in the sealed network namespace (scripts/sealed.sh): no
# packet can leave it. Pytest's exit code 5 ("no tests collected") is a failure here, never a
# silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
tier=all
case "${1:-}" in unit | e2e | browser) tier=$1; shift ;; esac

case "$tier" in
  unit)
    bash scripts/bootstrap.sh unit || exit 1
    bash scripts/lint.sh || exit 1
    set -- tests/unit -m unit "$@"
    ;;
  e2e | browser)
    bash scripts/bootstrap.sh || exit 1
    set -- "tests/$tier" -m "$tier" "$@"
    ;;
  all)
    bash scripts/bootstrap.sh || exit 1
    bash scripts/lint.sh || exit 1
    ;;
esac
bash scripts/sealed.sh .venv/bin/python -m pytest --durations=15 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit $rc
