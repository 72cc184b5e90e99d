#!/usr/bin/env bash
# Resharding across tensor and pipeline parallelism: a checkpoint saved under tp=2 resumes under
# tp=1 x pp=2 (2 stages of 2 blocks each), and the losses match an uninterrupted single-process
# run (1e-5).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set model.n_layers=4 --set profile.load_balance=false)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.tp=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.pp=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split"
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 1e-5
