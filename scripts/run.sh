#!/usr/bin/env bash
# Set up (idempotent), then run the main job on the embedded CPU backbone:
# 3 TextWorld cooking episodes with the self-improving agent. Extra args go to `evolvent run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/evolvent run --env textworld:cooking --episodes 3 --seed 1 "$@"
