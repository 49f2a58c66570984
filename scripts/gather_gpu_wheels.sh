#!/usr/bin/env bash
# Gather the wheels that benchmarks/gpu_smoke.py needs on the lent GPU machine and its image
# lacks, into wheelhouse/ (git-ignored; carried to the machine with `run`'s carry).
#
#   bash scripts/gather_gpu_wheels.sh [DEST]        # default DEST: wheelhouse
#
# That machine: Python 3.12, torch 2.11 + CUDA 13, transformers 5.x, and (per its package
# list) numpy, grpcio, psutil, py-cpuinfo, msgpack, ninja, einops, nvidia-ml-py, packaging,
# tqdm, pyyaml; no pydantic, no DeepSpeed, no network. The smoke script's import closure
# beyond that image (measured: `python -X importtime benchmarks/gpu_smoke.py ...`) is the
# pydantic family (paretopo.jobs, the learner and rollout settings) and python-dotenv
# (pydantic-settings); DeepSpeed adds hjson. Redis, protobuf and the gRPC health/reflection
# packages are not imported by the smoke run and stay behind.
#
# Versions come from constraints/gpu.txt (the GPU lock), so the GPU run uses what CI tests.
# DeepSpeed is built here as a pure-Python wheel with DS_BUILD_OPS=0 (no CUDA kernels are
# compiled ahead; the backend chooses an optimizer that needs no JIT).
set -euo pipefail

cd "$(dirname "$0")/.."
DEST=${1:-wheelhouse}
LOCK=constraints/gpu.txt
PY=${PYTHON:-.venv/bin/python}

pin() {  # the locked version of a distribution (names compared as PEP 503 normalises them)
  local want; want=$(echo "$1" | tr 'A-Z_.' 'a-z--')
  local line
  line=$(sed 's/#.*//' "$LOCK" | awk -F'==' -v w="$want" \
    '{n=tolower($1); gsub(/[_.]/, "-", n); gsub(/ /, "", n); if (n == w) {print $2; exit}}')
  if [ -z "$line" ]; then
    echo "gather_gpu_wheels: $1 is not pinned in $LOCK" >&2
    exit 1
  fi
  echo "$1==$(echo "$line" | tr -d ' ')"
}

BINARY=(pydantic pydantic-core annotated-types typing-inspection typing-extensions
        pydantic-settings python-dotenv hjson)
SPECS=()
for name in "${BINARY[@]}"; do SPECS+=("$(pin "$name")"); done
DEEPSPEED=$(pin deepspeed)

rm -rf "$DEST"
mkdir -p "$DEST"
# --no-deps: each dependency is named above (the rest are in the image); pip matches the
# manylinux tag exactly, so every tag a cp312 wheel on PyPI may carry is listed.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DEST" \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  "${SPECS[@]}"

# DeepSpeed ships only a source distribution: build it without its C++/CUDA ops. The build
# imports torch for version information only, so this environment's (CPU) torch serves.
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation \
  --wheel-dir "$BUILD" "$DEEPSPEED"
cp "$BUILD"/deepspeed-*.whl "$DEST"/

ls -l "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "gather_gpu_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, $((total / 1024)) KiB in $DEST"
if [ "$total" -ge $((64 * 1024 * 1024)) ]; then
  echo "gather_gpu_wheels: over the 64 MiB a device command can carry" >&2
  exit 1
fi
