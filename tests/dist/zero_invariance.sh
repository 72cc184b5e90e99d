#!/usr/bin/env bash
# Layout invariance for ZeRO stages 1 and 2: per-step losses with dp 2, dp 4 and edp 2 x ep 2 match
# the single process with zero_stage 0 to 1e-5; 3 steps + resume + 3 steps of stage 2 reproduce
# 6 straight steps exactly; a stage-2 checkpoint resumes under stage 0 (the format is shared).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/base"
for stage in 1 2; do
  for layout in 2x1 4x1 4x2; do
    n=${layout%x*} ep=${layout#*x}
    mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never \
      --set parallel.dp=$n --set parallel.ep=$ep --set parallel.zero_stage=$stage --run-dir "$WORK/z${stage}_$layout"
    echo -n "zero $stage, dp x ep = $layout: "
    compare_losses "$WORK/base/metrics.jsonl" "$WORK/z${stage}_$layout/metrics.jsonl" 1e-5
  done
done

z2=(--set parallel.dp=4 --set parallel.ep=2 --set parallel.zero_stage=2)
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z2[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/split" --exit-after 3
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z2[@]}" --set checkpoint.resume=never \
  --run-dir "$WORK/straight"
# The checkpoint holds the full moments (gathered from the shards), as a stage-0 one would.
cp -r "$WORK/split" "$WORK/split_z0"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z2[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split"
echo -n "zero 2 resume: "
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.dp=4 --set parallel.ep=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split_z0"
echo -n "zero 2 checkpoint resumed under zero 0: "
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split_z0/metrics.jsonl" 1e-5

# Stage 3 is refused with a message naming the key.
expect_exit 2 "$MOE_BIN" train "${args[@]}" --set parallel.zero_stage=3 --run-dir "$WORK/z3"
grep -q "parallel.zero_stage" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no message naming the key"; }
