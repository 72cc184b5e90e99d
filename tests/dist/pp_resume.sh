#!/usr/bin/env bash
# Checkpoints under pipeline parallelism: a pp 2 run stopped after 3 steps resumes under pp 2 with
# the losses of the uninterrupted pp 2 run (bit for bit), and the same checkpoint resumes on one
# process (pp 1, same micro-batches) with the losses of an uninterrupted single-process run (1e-5);
# pp 2 x dp 2 with ZeRO 2 resumes bit for bit; a NaN under pp 2 is diagnosed.
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

# The same with ZeRO stage 2 and expert parallelism inside each stage (pp 2 x dp 2, ep 2): the
# moments are unsharded over dp, then gathered over pp, for the save; resume is bit for bit.
zero=("${pp2[@]}" --set parallel.dp=2 --set parallel.ep=2 --set parallel.zero_stage=2)
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${zero[@]}" --set checkpoint.resume=never \
  --run-dir "$WORK/zero_straight"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${zero[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/zero_resumed" --exit-after 3
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${zero[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/zero_resumed"
echo -n "pp2 x dp2 zero2 -> same: "
compare_losses "$WORK/zero_straight/metrics.jsonl" "$WORK/zero_resumed/metrics.jsonl" 0

# A NaN in a parameter of the second stage (block 3's experts) before step 3: exit 1 naming the
# step, the first non-finite activation and the parameter (the scan runs after every stage got the
# owners' tensors); the last good checkpoint (step 2) is kept.
set +e
MOE_TEST_NAN_STEP=3 MOE_TEST_NAN_PARAM=layers.3.moe.experts.w1 mpirun --oversubscribe -np 2 "$MOE_BIN" train \
  "${args[@]}" "${pp2[@]}" --set checkpoint.resume=never --set checkpoint.every=2 --run-dir "$WORK/nan" \
  >"$WORK/out_nan" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$WORK/out_nan"; fail "pp=2 NaN: exit $rc, expected 1"; }
grep -q "non-finite loss at step 3 " "$WORK/out_nan" || { cat "$WORK/out_nan"; fail "no step 3"; }
grep -q "first non-finite activation in forward order: layers.3.moe.experts w1 x" "$WORK/out_nan" ||
  { cat "$WORK/out_nan"; fail "first non-finite activation is not block 3's experts"; }
grep -q "non-finite parameters: layers.3.moe.experts.w1" "$WORK/out_nan" || { cat "$WORK/out_nan"; fail "parameter"; }
[ "$(ls "$WORK/nan/checkpoints")" = "step_00000002" ] || fail "pp=2 NaN checkpoints: $(ls "$WORK/nan/checkpoints")"
echo "pp=2: non-finite step 3 diagnosed; checkpoint step 2 kept"
