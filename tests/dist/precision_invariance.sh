#!/usr/bin/env bash
# Layout invariance under train.precision bf16 and fp16: per-step losses of dp x ep = 2x2, tp = 2
# and ZeRO 2 over dp = 2 match the single process of the same precision to 5e-5 (measured over 10
# steps: at most 9.4e-6 for bf16 and 1.1e-6 for fp16; an fp32 summation-order difference can flip
# the rounding of one half-precision operand, so the bound is looser than fp32's 1e-5).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8)
for p in bf16 fp16; do
  "$MOE_BIN" train "${args[@]}" --set train.precision=$p --run-dir "$WORK/${p}_base"
  layouts=("parallel.dp=2 parallel.ep=2" "parallel.dp=2 parallel.zero_stage=2")
  [ $p = bf16 ] && layouts+=("parallel.tp=2")
  for layout in "${layouts[@]}"; do
    sets=()
    for kv in $layout; do sets+=(--set "$kv"); done
    name=${layout// /_}
    mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set train.precision=$p "${sets[@]}" \
      --run-dir "$WORK/${p}_$name"
    echo -n "$p $layout: "
    compare_losses "$WORK/${p}_base/metrics.jsonl" "$WORK/${p}_$name/metrics.jsonl" 5e-5
  done
done
