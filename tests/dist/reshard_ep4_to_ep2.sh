#!/usr/bin/env bash
# Resharding: a checkpoint of dp=4, ep=4 (one expert per rank) resumes under dp=2, ep=2; the losses
# match an uninterrupted run (1e-5). Changing the number of experts is a checkpoint error (exit 3)
# naming the tensor and the file.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set profile.load_balance=false)  # the profile file keeps one ep layout (its own rule)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.dp=4 --set parallel.ep=4 \
  --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.dp=2 --set parallel.ep=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split"
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 1e-5
expect_exit 3 mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.dp=2 --set parallel.ep=2 \
  --set moe.num_experts=8 --set train.steps=8 --set checkpoint.resume=auto --run-dir "$WORK/split"
grep -q "layers.0.moe.router.weight" "$WORK/stderr" && grep -q "rank_00000.h5" "$WORK/stderr" ||
  { cat "$WORK/stderr"; fail "the error does not name the tensor and the file"; }
