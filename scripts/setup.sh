#!/usr/bin/env bash
# One setup step for a fresh Debian machine: ffmpeg, then .venv with torch (CPU wheel) first and
# everything else under the pinned constraints. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "setup: installing ffmpeg from Debian"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
# sam2 without its declared dependencies (they pull torchvision); no CUDA extension on CPU.
sam2_pin=$(grep -E '^sam2==' requirements/constraints.txt)
.venv/bin/python -m pip show -q sam2 >/dev/null 2>&1 ||
  SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q --no-build-isolation --no-deps "$sam2_pin"

# torchvision from PyPI breaks beside this torch (and then transformers and diffusers): keep it out.
if .venv/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then
  echo "setup: torchvision is installed in .venv; remove it (pip uninstall torchvision)" >&2
  exit 1
fi
echo "setup: .venv ready"
