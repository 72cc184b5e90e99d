#!/usr/bin/env bash
# Layout invariance for expert parallelism, dropless: per-step losses of edp x ep in
# {2x1, 1x2, 2x2, 4x1, 1x4} (world = edp * ep = parallel.dp) match the single process to 1e-5.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set checkpoint.resume=never --set train.batch_size=8)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/base"
for layout in 2x1 1x2 2x2 4x1 1x4; do
  edp=${layout%x*} ep=${layout#*x} n=$((edp * ep))
  mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set parallel.dp=$n --set parallel.ep=$ep \
    --run-dir "$WORK/$layout"
  echo -n "edp x ep = $layout: "
  compare_losses "$WORK/base/metrics.jsonl" "$WORK/$layout/metrics.jsonl" 1e-5
done
