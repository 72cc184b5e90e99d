#!/usr/bin/env bash
# Resharding: a checkpoint of dp=2, ep=2 resumes on one process with the losses of an
# uninterrupted run (1e-5), and `moe eval` reads the expert-parallel checkpoint directly.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set profile.load_balance=false)  # the profile file keeps one ep layout (its own rule)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.dp=2 --set parallel.ep=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
ep_ckpt="$WORK/split/checkpoints/step_00000003"
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --set checkpoint.keep=10 --run-dir "$WORK/split"
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 1e-5
# Eval of the ep=2 checkpoint equals eval of its single-file export (same weights, any layout).
eval_args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --set data.path="$WORK/fortunes" --batches 2 --json)
"$MOE_BIN" eval "${eval_args[@]}" --from "$ep_ckpt" >"$WORK/eval_ep.json"
"$MOE_BIN" export --from "$ep_ckpt" --format safetensors --out "$WORK/ep.safetensors" >/dev/null
"$MOE_BIN" eval "${eval_args[@]}" --from "$WORK/ep.safetensors" >"$WORK/eval_st.json"
cmp "$WORK/eval_ep.json" "$WORK/eval_st.json" || fail "eval differs: $(cat "$WORK/eval_ep.json" "$WORK/eval_st.json")"
