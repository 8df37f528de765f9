#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (root, Python 3.11, no GPU):
# apt packages, a .venv, torch (CPU wheel) first, pinned dependencies, and
# llama-cpp-python built portable (the native build dies with "Illegal instruction").
# Re-running it is cheap: it only reinstalls when the pins or this script change.
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap: the sandbox; openjdk: ScienceWorld; chromium + its driver: MiniWoB++.
APT_PACKAGES=(bubblewrap build-essential cmake git openjdk-17-jre-headless chromium chromium-driver)
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp_want=$(cat scripts/setup.sh constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f .venv/.setup-stamp ] && [ "$(cat .venv/.setup-stamp)" = "$stamp_want" ]; then
  exit 0
fi

PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade "pip>=24" >/dev/null
# torch first: the CPU wheel; any other spec pulls gigabytes of CUDA packages.
"${PIP[@]}" install "torch==2.13.0"
echo "[setup] installing pinned dependencies (first run builds llama-cpp-python: ~8 min on 2 cores)"
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
export FORCE_CMAKE=1
# fast-downward-textworld (ALFWorld's planner) runs `python build.py` while building: the
# venv's python must come first on PATH, or a pyenv shim answers without its stdlib.
PATH="$PWD/.venv/bin:$PATH" "${PIP[@]}" install -c constraints.txt -e ".[embedded,dev,envs]"
echo "$stamp_want" > .venv/.setup-stamp
echo "[setup] done: $(.venv/bin/evolvent --version)"
