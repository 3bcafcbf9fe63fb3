#!/usr/bin/env bash
# Guest instruction counts per GEMV of each aarch64 tier vs the reference, under QEMU user mode
# (TOOLCHAIN §3; /work/shared/tools/count-insns sets up a plugin-capable qemu-aarch64 on first use).
#
#   kernels-neon/count-insns.sh [CPU...]            default CPUs: cortex-a53 cortex-a72 cortex-a76
#
# Builds examples/insns.rs as a static musl binary, copies it to a fixed path (counts depend on
# argv[0] and the environment; count-insns clears the environment), runs each kernel with 1 and 3
# repetitions and prints (count(3) − count(1)) / 2 = instructions of one call, so data setup cancels.
set -euo pipefail
cd "$(dirname "$0")/.."
CPUS=("$@"); [ ${#CPUS[@]} -gt 0 ] || CPUS=(cortex-a53 cortex-a72 cortex-a76)
COUNT=${COUNT_INSNS:-/work/shared/tools/count-insns}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-kernels}
# criterion (a dev-dependency) pulls a C build script; the glibc cross gcc compiles it fine for musl.
CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc} \
  cargo build -q --release -p tern-kernels --features std --example insns --target aarch64-unknown-linux-musl
BIN=/tmp/tern-insns-bin
cp "$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/examples/insns" "$BIN"

count() { "$COUNT" --cpu "$1" "$BIN" "${@:2}" | awk '/insns:/ {print $2}'; }
per_call() { # cpu kernel k m
  local a b; a=$(count "$1" "$2" "$3" "$4" 1); b=$(count "$1" "$2" "$3" "$4" 3); echo $(( (b - a) / 2 ))
}

printf '%-11s %-14s %-11s %14s %12s\n' cpu kernel "KxM" insns/call insns/byte
for cpu in "${CPUS[@]}"; do
  kernels=(reference neon tl1-format)
  [ "$cpu" = cortex-a76 ] && kernels+=(dotprod)
  for shape in "2560 2560" "2560 6912" "6912 2560"; do
    set -- $shape
    for kern in "${kernels[@]}"; do
      [ "$kern" = reference ] && [ "$1$2" != 25602560 ] && continue   # slow and linear; one shape is enough
      n=$(per_call "$cpu" "$kern" "$1" "$2")
      printf '%-11s %-14s %-11s %14d %12.3f\n' "$cpu" "$kern" "${1}x${2}" "$n" "$(echo "$n / ($1 * $2 / 4)" | bc -l)"
    done
  done
  for kern in f16-reference f16-neon; do
    n=$(per_call "$cpu" "$kern" 2560 4096)
    printf '%-11s %-14s %-11s %14d %12.3f\n' "$cpu" "$kern" "2560x4096" "$n" "$(echo "$n / (2560 * 4096 * 2)" | bc -l)"
  done
done
