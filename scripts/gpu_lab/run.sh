#!/usr/bin/env bash
# The lab on a lent GPU machine, inside one call's time limit (BUDGET seconds, default 480), through the
# product's own commands: setup, smoke (every training loop once), the grid (breadth first, --resume,
# --keep-going: every attack once before any second trigger), stream evaluations of the attacks the
# CPU could not train. Everything it writes goes to $OUT: log.txt and results.tgz (lab/, stream-*/).
#
#   bash scripts/gpu_lab/pack.sh            # here, once: .device/
#   run(command="bash scripts/gpu_lab/run.sh", carry=[".device"], timeout_s=560)
#
# A later call goes on where one stopped: put its lab/results.json under .device/previous/ (the models
# are gone with the machine; --resume trusts a record whose meta is the cell's recipe) and set
# SMOKE=0 STREAM=0 to spend the whole budget on the grid; ATTACKS=... narrows it, STREAM_MODELS=... (a
# glob) chooses the models streamed.
#
# ONION on the grid (ONION=1): `ONION=1 bash scripts/gpu_lab/pack.sh` here, then carry the language
# model's two halves in two quick calls back to back (the machine keeps carried paths while it is warm)
# and run the grid with onion among the defenses:
#   run(command="ls -la .device-lm1", carry=[".device-lm1"])
#   run(command="ls -la .device-lm1 .device-lm2", carry=[".device-lm2"])
#   run(command="ONION=1 BUDGET=540 bash scripts/gpu_lab/run.sh", carry=[".device"], timeout_s=600)
# Without both halves there (a fresh machine) it says so and runs the grid without ONION.
#
# Choosing the per-message defaults (CHOOSE=1): the grid on the validation split (`--split validation`:
# calibrated as a test run is, judged on the rest of the validation split), once with the shipped setup
# and once per docs/lab/candidates/*.json, then `lab choose` over the runs; nothing looks at the test
# split. Results: $OUT/results.tgz (choose/<run>/results.json, choose/choice.md). DATASETS / ATTACKS narrow
# it to what the call's budget allows:
#   run(command="CHOOSE=1 SMOKE=0 BUDGET=540 bash scripts/gpu_lab/run.sh", carry=[".device"], timeout_s=600)
set -uo pipefail
START=$(date +%s)
BUDGET=${BUDGET:-480}
OUT=${OUT:-/tmp/out}
RES=/tmp/results
mkdir -p "$OUT" "$RES"
exec > >(tee -a "$OUT/log.txt") 2>&1
left() { echo $((START + BUDGET - $(date +%s))); }
within() {  # within SECONDS CMD...: run CMD for at most SECONDS, and at most what is left of the budget
  local cap=$1 rest
  shift
  rest=$(left)
  ((rest < cap)) && cap=$rest
  ((cap < 10)) && { echo "skipped (budget): $*"; return 0; }
  echo "== $(date -u +%T) (${cap}s) $*"
  timeout --signal=INT --kill-after=10 "$cap" "$@"
  echo "== exit $? after $(($(date +%s) - START)) s"
}
pack() { tar czf "$OUT/results.tgz" -C "$RES" . && ls -la "$OUT"; }
trap pack EXIT

nvidia-smi --query-gpu=name,memory.total --format=csv
bash scripts/gpu_lab/setup.sh || exit 1
source scripts/gpu_lab/env.sh
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.is_available())"

if [ -f .device/previous/results.json ]; then
  mkdir -p "$RES/lab" && cp .device/previous/results.json "$RES/lab/"
fi
attacks=${ATTACKS:-badnets,badnets-split,badnets-set,addsent,ep,ripples,adaptive,lws}
if [ "${SMOKE:-1}" = 1 ]; then
  within 120 python3 scripts/gpu_lab/smoke.py --device cuda --work /tmp/smoke | tee /tmp/smoke.log
  cp -r /tmp/smoke/eval "$RES/smoke-eval" 2>/dev/null
  passed=$(grep '^PASSED' /tmp/smoke.log | tail -1 | cut -d' ' -f2)
  [ -n "$passed" ] || { echo "nothing passed the smoke run"; exit 1; }
  kept=""
  for a in ${attacks//,/ }; do  # the fine_tune attacks pass with badnets
    loop=$a
    [[ $a == badnets-split || $a == badnets-set || $a == addsent ]] && loop=badnets
    [[ ",$passed," == *",$loop,"* ]] && kept+="${kept:+,}$a"
  done
  attacks=$kept
fi
echo "attacks in the grid: $attacks"

defenses=none,xgraad-paper,xgraad,strip,rap
if [ "${ONION:-0}" = 1 ]; then
  if bash scripts/gpu_lab/onion_lm.sh join .device-lm1 .device-lm2 /tmp/onion-lm.gguf; then
    export STREAM_GUARD_ONION_LM=/tmp/onion-lm.gguf
    defenses+=,onion
  else
    echo "ONION skipped: its language model did not come with the earlier calls"
  fi
fi
grid=(python3 -m consumers.cli lab grid --device cuda --keep-going --resume --out "$RES/lab" --models-dir /tmp/models
  --defenses "$defenses")
if [ "${CHOOSE:-0}" = 1 ]; then
  part=(--datasets "${DATASETS:-movies,spam,bbc}" --attacks "$attacks" --no-sweep)
  choose=(python3 -m consumers.cli lab grid --device cuda --keep-going --resume --models-dir /tmp/models
    --split validation "${part[@]}")
  runs=("$RES/choose/shipped")
  within 100000 "${choose[@]}" --defenses none,xgraad-paper,xgraad --out "$RES/choose/shipped"
  for cand in docs/lab/candidates/*.json; do
    name=$(basename "$cand" .json)
    runs+=("$RES/choose/$name")
    within 100000 "${choose[@]}" --defenses none,xgraad --xgraad-config "$cand" --out "$RES/choose/$name"
  done
  within 60 python3 -m consumers.cli lab choose "${runs[@]}" --out "$RES/choose/choice.md"
  exit 0
fi
# the attacks this machine's CPU could not afford, on movies, both triggers
new=$(echo "$attacks" | tr ',' '\n' | grep -E '^(ripples|lws|adaptive)$' | paste -sd, -)
[ "${STREAM:-1}" = 1 ] && [ -n "$new" ] && within 170 "${grid[@]}" --datasets movies --attacks "$new"
[ "${STREAM:-1}" = 1 ] && for m in ${STREAM_MODELS:-/tmp/models/movies-ripples-*-s0 /tmp/models/movies-lws-*-s0}; do
  [ -f "$m/meta.json" ] || continue
  name=$(basename "$m")
  within 60 python3 -m consumers.cli lab stream --model "$m" --max-test 600 --device cuda \
    --out "$RES/stream-$name" --work "/tmp/stream/$name"
done
within 100000 "${grid[@]}" --datasets movies,spam,bbc --attacks "clean,$attacks"
