#!/usr/bin/env bash
# Guest instructions per decoded token of the static aarch64 `tern`, per kernel tier and core,
# under QEMU user mode (exact and repeatable; TOOLCHAIN §3, ../shared/tools/count-insns).
#
#   tools/insns-per-token.sh [MODEL.gguf]     default: a 2B4T-shaped random model with 4 layers
#
# Method: count `tern eval --one-by-one -t 1` over 1 token and over 3 tokens; (N3 − N1) / 2 is the
# cost of one decode step (all layers + the f16 LM head), with loading and setup cancelled out.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT_INSNS:-$(pwd)/../shared/tools/count-insns}
[ -x "$COUNT" ] || { echo "need ../shared/tools/count-insns (or COUNT_INSNS=path)" >&2; exit 1; }
MODEL=${1:-}
if [ -z "$MODEL" ]; then
  MODEL=/tmp/tern-2b4t-4layers.gguf
  [ -f "$MODEL" ] || cargo run -q --release -p tern-gen-model -- --preset 2b4t --layers 4 -o "$MODEL"
fi
cross/build aarch64-linux >/dev/null
BIN=/tmp/tern-insns-tern
cp dist/aarch64-linux/tern "$BIN"
count() { "$COUNT" --cpu "$1" "$BIN" eval -m "$MODEL" -t 1 -c 8 --kernel "$2" --one-by-one --tokens "$3" | awk '/insns:/ {print $2}'; }
printf '%-11s %-10s %16s\n' cpu kernel insns/token
for cpu in cortex-a72 cortex-a76; do
  tiers=(reference neon); [ "$cpu" = cortex-a76 ] && tiers+=(dotprod)
  for k in "${tiers[@]}"; do
    a=$(count "$cpu" "$k" 1); b=$(count "$cpu" "$k" 1,2,3)
    printf '%-11s %-10s %16d\n' "$cpu" "$k" $(( (b - a) / 2 ))
  done
done
