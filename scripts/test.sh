#!/usr/bin/env bash
# Install, then run every check: generated-code freshness, ruff, and the whole pytest suite.
# Exits non-zero on any failure; pytest itself fails (exit 5) when no test is collected.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
.venv/bin/python -m pytest "$@"
