#!/usr/bin/env bash
# tern's full test suite: host tests, no_std proof, aarch64 tests under QEMU (A53, A72, A76),
# the llama3-random fixture from ../shared, cross builds and bare-metal boots.
# Run `bash .ci/setup` once first (installs cross compilers and QEMU).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${TERN_SHARED:-$ROOT/../shared}
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s ===\n' "$*"; }

step "host: cargo test --workspace"
cargo test --workspace --quiet 2>&1 | tail -n +1

step "no_std proof: runtime core, kernels and board data for aarch64-unknown-none"
cargo build --quiet -p tern-runtime -p tern-kernels -p tern-boards --target aarch64-unknown-none

for cpu in cortex-a53 cortex-a72 cortex-a76; do
  step "aarch64 under qemu-aarch64 -cpu $cpu: kernels + forward pass"
  QEMU_CPU=$cpu cargo test --quiet --target aarch64-unknown-linux-gnu \
    -p tern-kernels -p tern-runtime -p tern-tests --test forward_golden $([ "$cpu" = cortex-a72 ] && echo --test tl1) --lib 2>&1 | tail -n +1
done

step "llama3-random fixture (40 MB, read from $SHARED)"
if [ -f "$SHARED/fixtures/models/llama3-random.i2_s.gguf" ]; then
  TERN_SHARED="$SHARED" cargo test --quiet -p tern-tests --test llama3_random -- --include-ignored
elif [ -n "${CI:-}" ]; then
  echo "FAIL: $SHARED/fixtures/models/llama3-random.i2_s.gguf is missing (CI needs ../shared)" >&2
  exit 1
else
  echo "skipped: ../shared not found (set TERN_SHARED=/path/to/shared)"
fi

step "cross: static aarch64 (musl) and armv7 binaries answer like the host under qemu-user"
PROMPT="By default, sort reads the lines of each file and"
M=tests/data/tiny-trained.i2_s.gguf
cargo build --quiet --release -p tern
want=$(./target/release/tern run -m $M -p "$PROMPT" -n 32 --temp 0 2>/dev/null)
for target in aarch64-linux armv7-linux; do
  cross/build "$target" >/dev/null
  for cpu in $([ "$target" = aarch64-linux ] && echo cortex-a53 cortex-a72 cortex-a76 || echo cortex-a7); do
    got=$(cross/run-qemu "$target" --cpu "$cpu" --model $M -- run -m $M -p "$PROMPT" -n 32 --temp 0 2>/dev/null)
    if [ "$got" != "$want" ]; then
      printf 'FAIL: %s on %s printed\n%s\nexpected\n%s\n' "$target" "$cpu" "$got" "$want" >&2
      exit 1
    fi
    echo "ok: $target ($cpu) prints the host's greedy text"
  done
done
step "SD-card images (FAT32 with firmware, config.txt, kernel8.img, model)"
for board in rpi3 rpi4; do
  img=target/tern-$board.img
  cross/mkimage $board --model $M --out $img >/dev/null 2>&1 || { echo "FAIL: cross/mkimage $board" >&2; exit 1; }
  off=$(( $(PATH=$PATH:/sbin:/usr/sbin sfdisk -d $img | awk -F'[=,]' '/start=/ {gsub(/ /,"",$2); print $2; exit}') * 512 ))
  listing=$(mdir -b -i "$img@@$off" ::/)
  for f in config.txt kernel8.img start.elf bootcode.bin; do
    echo "$listing" | grep -qi "/$f\$" || { echo "FAIL: $img lacks $f"; echo "$listing"; exit 1; }
  done
  # The model: model.gguf next to board .dtb files, or the TERNBLOB at 0x10000000 without them.
  if echo "$listing" | grep -qi '\.dtb$'; then model=model.gguf; else model=model.tblob; fi
  echo "$listing" | grep -qi "/$model\$" || { echo "FAIL: $img lacks $model"; exit 1; }
  mtype -i "$img@@$off" ::/config.txt | grep -q "^initramfs $model" \
    || { echo "FAIL: $img config.txt does not load $model"; exit 1; }
  echo "ok: $img has firmware, config.txt, kernel8.img and $model"
done

echo
echo "all test suites passed"
