#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine with Python 3.11, then run it.
# Used as-is by the README's quick start and by CI (.ci/run). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test]"

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

echo "== pytest"
# pytest exits 5 when it collected no test: that is a failure too.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
