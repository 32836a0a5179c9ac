#!/usr/bin/env bash
# The paper-shape GPU benchmark (analysis/gpu_bench.py) on a GPU machine that has CUDA torch
# and transformers but neither Hydra nor vLLM, and no network (this workplace's lent GPU).
#
#   bash launchers/gpu_bench.sh wheels       # here: Hydra's pure-Python wheels into .whl/ (~0.3 MB)
#   bash launchers/gpu_bench.sh run OUT      # there (carry .whl): install them to /tmp/site, run
#   PY=.venv/bin/python ARGS=--dry-run bash launchers/gpu_bench.sh run /tmp/o   # the same, tiny, here
#
# `run` benchmarks the transformers engine, and vLLM too where it imports (the lent H200's
# image has no vLLM, and its wheel, 228 MiB, is over the 64 MiB a device call carries). The
# benchmark rewrites its JSON after every case and stops after ${BUDGET:-540} s, so a
# 10-minute command brings back what it finished: OUT/benchmark_gpu_transformers.json (and
# OUT/benchmark_gpu.json), the log, the versions and nvidia-smi's view.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
wheels)
    PY=${PY:-.venv/bin/python}
    rm -rf .whl && mkdir -p .whl
    # omegaconf / hydra-core / antlr4 exactly as this checkout's venv has them (antlr4 is an sdist: built here)
    pins=$("$PY" -m pip list --format=freeze 2>/dev/null | grep -iE '^(hydra-core|omegaconf|antlr4-python3-runtime)==')
    [ "$(echo "$pins" | wc -l)" -eq 3 ] || { echo "gpu_bench: hydra-core, omegaconf, antlr4 not all in $PY's environment" >&2; exit 1; }
    # shellcheck disable=SC2086
    "$PY" -m pip wheel -q --no-deps -w .whl $pins || exit 1
    ls -l .whl
    ;;
run)
    out=${2:?usage: launchers/gpu_bench.sh run OUT}
    mkdir -p "$out"
    ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_bench: no .whl/ here: run 'launchers/gpu_bench.sh wheels' first and carry .whl" >&2; exit 1; }
    PY=${PY:-python3}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1
    "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)" | tee "$out/versions.txt"
    engines=transformers
    "$PY" -c "import vllm" 2>/dev/null && engines=vllm,transformers
    # shellcheck disable=SC2086
    # the model folders stay out of OUT (a device call brings back at most 8 files)
    work=${WORK:-/tmp/gsi_gpu_bench}
    timeout "${BUDGET:-540}" "$PY" -m analysis.benchmark --gpu ${ARGS:-} --backends "$engines" --out "$work" 2>&1 | tee "$out/log"
    rc=${PIPESTATUS[0]}
    cp "$work"/benchmark_gpu*.json "$out"/ 2>/dev/null
    exit "$rc"
    ;;
*)
    echo "usage: launchers/gpu_bench.sh wheels | run OUT" >&2
    exit 2
    ;;
esac
