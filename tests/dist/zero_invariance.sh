#!/usr/bin/env bash
# Layout invariance for ZeRO stages 1, 2 and 3: per-step losses with dp 2, dp 4 and edp 2 x ep 2
# match the single process with zero_stage 0 to 1e-5; 3 steps + resume + 3 steps of stages 2 and 3
# reproduce 6 straight steps exactly; their checkpoints resume under stage 0 (the format is shared).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/base"
for stage in 1 2 3; do
  for layout in 2x1 4x1 4x2; do
    n=${layout%x*} ep=${layout#*x}
    mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never \
      --set parallel.dp=$n --set parallel.ep=$ep --set parallel.zero_stage=$stage --run-dir "$WORK/z${stage}_$layout"
    echo -n "zero $stage, dp x ep = $layout: "
    compare_losses "$WORK/base/metrics.jsonl" "$WORK/z${stage}_$layout/metrics.jsonl" 1e-5
  done
done

for stage in 2 3; do
  z=(--set parallel.dp=4 --set parallel.ep=2 --set parallel.zero_stage=$stage)
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z[@]}" --set checkpoint.resume=auto \
    --run-dir "$WORK/split$stage" --exit-after 3
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z[@]}" --set checkpoint.resume=never \
    --run-dir "$WORK/straight$stage"
  # The checkpoint holds the full moments (gathered from the shards), as a stage-0 one would.
  cp -r "$WORK/split$stage" "$WORK/split${stage}_z0"
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z[@]}" --set checkpoint.resume=auto \
    --run-dir "$WORK/split$stage"
  echo -n "zero $stage resume: "
  compare_losses "$WORK/straight$stage/metrics.jsonl" "$WORK/split$stage/metrics.jsonl" 0
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.dp=4 --set parallel.ep=2 \
    --set checkpoint.resume=auto --run-dir "$WORK/split${stage}_z0"
  echo -n "zero $stage checkpoint resumed under zero 0: "
  compare_losses "$WORK/straight$stage/metrics.jsonl" "$WORK/split${stage}_z0/metrics.jsonl" 1e-5
done
