#!/usr/bin/env bash
# Install, then run every check: generated-code freshness, ruff, and the whole pytest suite.
# Exits non-zero on any failure; pytest itself fails (exit 5) when no test is collected.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The benchmark files live in ../shared/data beside the checkout. A clone made elsewhere
# (`git clone /work/main /tmp/x`) finds them beside the checkout it was cloned from.
if [ -z "${PARETOPO_SHARED_DATA:-}" ] && [ ! -d ../shared/data ]; then
  origin=$(git config --get remote.origin.url 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared/data" ]; then
    export PARETOPO_SHARED_DATA="$(cd "$origin/../shared/data" && pwd)"
    echo "==> shared data: $PARETOPO_SHARED_DATA"
  fi
fi
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
.venv/bin/python -m pytest "$@"
