#!/usr/bin/env bash
# train.device: cuda without a GPU (this CI machine) or with a layout the GPU path does not run
# exits 2 naming the reason; auto falls back to the CPU and trains exactly as device cpu does.
# Where a GPU is present, the cuda cases are skipped (tests/gpu covers the device step).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
tiny="$MOE_SOURCE_DIR/configs/tiny.yaml"
run() {  # run NAME args...: a 6-step tiny run into $WORK/NAME
  local name=$1; shift
  "$MOE_BIN" train --config "$tiny" --set data.path="$WORK/fortunes" --set train.steps=6 --set train.log_every=2 \
    --set checkpoint.resume=never --set profile.load_balance=false --run-dir "$WORK/$name" --quiet "$@"
}
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_exit 2 run cuda --set train.device=cuda
  grep -q "train.device" "$WORK/stderr" || { cat "$WORK/stderr"; fail "the message does not name train.device"; }
  grep -Eq "no CUDA device|no CUDA backend" "$WORK/stderr" || { cat "$WORK/stderr"; fail "the message does not say why"; }
  run auto --set train.device=auto
  run cpu --set train.device=cpu
  compare_losses "$WORK/auto/metrics.jsonl" "$WORK/cpu/metrics.jsonl" 1e-12
  # moe generate --device: cuda is refused the same way; auto decodes on the CPU.
  gen=(generate --from "$WORK/cpu" --prompt "Th" --max-tokens 8 --temperature 0 --set data.path="$WORK/fortunes")
  expect_exit 2 "$MOE_BIN" "${gen[@]}" --device cuda
  grep -q -- "--device cuda" "$WORK/stderr" || { cat "$WORK/stderr"; fail "generate does not name --device"; }
  expect_exit 0 "$MOE_BIN" "${gen[@]}" --device auto
  cp "$WORK/stdout" "$WORK/auto.txt"
  expect_exit 0 "$MOE_BIN" "${gen[@]}" --device cpu
  cmp -s "$WORK/stdout" "$WORK/auto.txt" || fail "generate --device auto differs from --device cpu"
fi
# A layout the device step does not run is refused by name (checked before looking for a GPU).
expect_exit 2 run cuda_tp --set train.device=cuda --set moe.capacity_factor=1.25
grep -Eq "capacity_factor|no CUDA backend" "$WORK/stderr" || { cat "$WORK/stderr"; fail "the message does not name moe.capacity_factor"; }
echo "device selection: ok"
