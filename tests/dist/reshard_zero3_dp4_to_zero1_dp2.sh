#!/usr/bin/env bash
# Resharding across ZeRO stages and dp degrees: a checkpoint saved under zero_stage 3 with dp=4,
# ep=2 resumes under zero_stage 1 with dp=2, ep=2 (parameters, AdamW moments, loader and RNG
# state), and the losses match an uninterrupted single-process run (1e-5).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set profile.load_balance=false)  # the profile file keeps one ep layout (its own rule)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.dp=4 --set parallel.ep=2 \
  --set parallel.zero_stage=3 --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.dp=2 --set parallel.ep=2 \
  --set parallel.zero_stage=1 --set checkpoint.resume=auto --run-dir "$WORK/split"
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 1e-5
