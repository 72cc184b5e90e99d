#!/usr/bin/env bash
# Layout invariance for data parallelism: dp=2 and dp=4 give the single-process losses (1e-5).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set checkpoint.resume=never --set train.batch_size=8)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/dp1"
for n in 2 4; do
  mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set parallel.dp=$n --run-dir "$WORK/dp$n"
  compare_losses "$WORK/dp1/metrics.jsonl" "$WORK/dp$n/metrics.jsonl" 1e-5
done
