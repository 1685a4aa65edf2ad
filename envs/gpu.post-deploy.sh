#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment (from a copy under .snakemake/conda, in
# the working directory). Install the senorita package from the checkout, without dependencies:
# the environment file pins those. Set SENORITA_SRC when the working directory is not the clone.
set -euo pipefail
src=${SENORITA_SRC:-$PWD}
if ! grep -qs '^name = "senorita"' "$src/pyproject.toml"; then
  echo "post-deploy: $src is not a senorita checkout; set SENORITA_SRC to the clone" >&2
  exit 1
fi
python -m pip install --no-deps -e "$src"
# SAM 2.1 for the masks stage, without its declared dependencies (they pull a torchvision that
# does not match this torch); its optional CUDA extension is skipped (SAM2_BUILD_CUDA=0).
SAM2_BUILD_CUDA=0 python -m pip install --no-build-isolation --no-deps \
  "$(grep -E '^sam2==' "$src/requirements/constraints.txt")"
