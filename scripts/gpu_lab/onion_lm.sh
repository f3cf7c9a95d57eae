#!/usr/bin/env bash
# ONION's language model across the 64 MiB a device call may carry: the GGUF file in two halves.
#
#   onion_lm.sh split FILE.gguf DIR1 DIR2   # here (pack.sh): DIR1/part, DIR2/part, both with FILE's sha256
#   onion_lm.sh join DIR1 DIR2 OUT.gguf     # there (run.sh): OUT.gguf, checked against that sha256
#
# join fails (exit 1, one line) when a half is missing, e.g. when the machine was handed back between
# the calls that carried them, or when the joined file is not the one that was split.
set -euo pipefail
case "${1:-}" in
  split)
    file=$2 one=$3 two=$4
    size=$(stat -c %s "$file")
    half=$(((size + 1) / 2))
    rm -rf "$one" "$two" && mkdir -p "$one" "$two"
    head -c "$half" "$file" > "$one/part"
    tail -c +"$((half + 1))" "$file" > "$two/part"
    sum=$(sha256sum "$file" | cut -d' ' -f1)
    echo "$sum" | tee "$one/sha256" > "$two/sha256"
    ;;
  join)
    one=$2 two=$3 out=$4
    for d in "$one" "$two"; do
      [ -f "$d/part" ] && [ -f "$d/sha256" ] || { echo "onion_lm: $d/part missing (carry it first)"; exit 1; }
    done
    cat "$one/part" "$two/part" > "$out"
    want=$(cat "$one/sha256")
    got=$(sha256sum "$out" | cut -d' ' -f1)
    [ "$want" = "$got" ] && [ "$want" = "$(cat "$two/sha256")" ] || {
      rm -f "$out"
      echo "onion_lm: joined file does not match the split one (halves of different packs?)"
      exit 1
    }
    ;;
  *)
    echo "usage: onion_lm.sh split FILE DIR1 DIR2 | join DIR1 DIR2 OUT" >&2
    exit 2
    ;;
esac
