#!/usr/bin/env bash
# Checkpoints under pipeline parallelism: a pp 2 run stopped after 3 steps resumes under pp 2 with
# the losses of the uninterrupted pp 2 run (bit for bit), and the same checkpoint resumes on one
# process (pp 1, same micro-batches) with the losses of an uninterrupted single-process run (1e-5).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set checkpoint.every=0 --set checkpoint.keep=10
      --set train.batch_size=8 --set model.seq_len=32 --set model.d_model=32 --set model.n_layers=4
      --set model.moe_every=2 --set model.ffn_hidden=64 --set moe.expert_hidden=64
      --set parallel.microbatches=2 --set profile.load_balance=false)
pp2=(--set parallel.pp=2 --set parallel.schedule=1f1b)

mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" "${pp2[@]}" --set checkpoint.resume=never \
  --run-dir "$WORK/pp2_straight"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" "${pp2[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/pp2_resumed" --exit-after 3
test -d "$WORK/pp2_resumed/checkpoints/step_00000003" || fail "no checkpoint at step 3"
cp -r "$WORK/pp2_resumed" "$WORK/pp1_resumed"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" "${pp2[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/pp2_resumed"
echo -n "pp2 -> pp2: "
compare_losses "$WORK/pp2_straight/metrics.jsonl" "$WORK/pp2_resumed/metrics.jsonl" 0

"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/pp1_straight"
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --run-dir "$WORK/pp1_resumed"
echo -n "pp2 -> pp1: "
compare_losses "$WORK/pp1_straight/metrics.jsonl" "$WORK/pp1_resumed/metrics.jsonl" 1e-5
