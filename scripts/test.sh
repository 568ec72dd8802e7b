#!/usr/bin/env bash
# Lint, type-check and test fleetd against the real services (what `make test` and CI run).
#
#   scripts/test.sh                 setup, ruff (lint, format), mypy, import contracts, the whole
#                                   pytest suite
#   scripts/test.sh -k mission -x   the same; arguments go to pytest
#   scripts/test.sh --check         lint, type, import and unit-file checks only (no services,
#                                   no database)
#
# Every step runs even when an earlier one fails, so one run shows every problem; the exit
# status is non-zero if any step failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"

check_only=0
if [ "${1:-}" = "--check" ]; then
    check_only=1
    shift
fi

if [ "$check_only" = 1 ]; then
    FLEETD_SKIP_SERVICES=1 FLEETD_SKIP_DB=1 bash scripts/setup.sh
else
    bash scripts/setup.sh
fi

failed=()

step() {
    local name="$1"
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    if "$@"; then
        printf '==> %s: ok\n' "$name"
    else
        printf '==> %s: FAILED (exit %s)\n' "$name" "$?" >&2
        failed+=("$name")
    fi
}

step ruff "$VENV/bin/ruff" check .
step format "$VENV/bin/ruff" format --check .
# Everything Python: the packages, the benchmarks, the scripts and the tests.
step mypy "$VENV/bin/mypy" dispatcher fleet geo protocols sim benchmarks scripts tests
# The architecture's import rules (.importlinter): the core imports no edge, no cycles.
step imports "$VENV/bin/lint-imports" --no-cache --no-logo
# The systemd units, checked offline by systemd-analyze verify in a temporary root.
step units bash scripts/verify_units.sh

if [ "$check_only" = 0 ]; then
    printf '\n==> pytest: pytest -q -p no:cacheprovider %s\n' "$*"
    rc=0
    "$VENV/bin/pytest" -q -p no:cacheprovider "$@" || rc=$?
    case "$rc" in
        0) printf '==> pytest: ok\n' ;;
        5)
            printf '==> pytest: FAILED: no tests were collected (exit 5); a suite that runs nothing passes nothing\n' >&2
            failed+=(pytest)
            ;;
        *)
            printf '==> pytest: FAILED (exit %s)\n' "$rc" >&2
            failed+=(pytest)
            ;;
    esac
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
echo "all checks passed"
