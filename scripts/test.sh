#!/usr/bin/env bash
# Set up (idempotent), then run every test: unit tests and the integration tests that use the
# real embedded LLM server, real TextWorld games and real subprocess kills.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export EVOLVENT_HOME="${EVOLVENT_HOME:-$(mktemp -d)}"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
