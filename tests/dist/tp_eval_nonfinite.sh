#!/usr/bin/env bash
# Periodic evaluation and the non-finite diagnostic under tensor and expert parallelism.
# - train.eval_every: eval_loss of tp 2, dp 2 x ep 2, tp 2 x dp 2 x ep 2, etp = tp 2 and dp 2 x etp 2
#   matches the single process to 1e-5 (the tolerance of tp_invariance.sh; the layouts change only
#   summation order).
# - A NaN injected into layers.0.attention.wq.weight under tp 2 x dp 2 is located by the replay:
#   first activation layer 0's q, parameter named once (its two dp copies count as one slice).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=2 --set train.batch_size=8 --set model.seq_len=32
      --set checkpoint.every=0 --set checkpoint.resume=never --set train.eval_every=2 --set train.eval_batches=2)

compare_eval() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 2, (len(a), len(b))
for x, y in zip(a, b):
    rel = abs(x["eval_loss"] - y["eval_loss"]) / x["eval_loss"]
    assert rel <= 1e-5, f"step {x['step']}: eval_loss {x['eval_loss']} vs {y['eval_loss']} (rel {rel:.2e})"
print("eval losses agree within 1e-5")
PY
}

"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/one"
run() {
  local name=$1 n=$2; shift 2
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" "$@" --run-dir "$WORK/$name"
  echo -n "$name: "
  compare_losses "$WORK/one/metrics.jsonl" "$WORK/$name/metrics.jsonl" 1e-5
  compare_eval "$WORK/one/metrics.jsonl" "$WORK/$name/metrics.jsonl"
}
run tp2 2 --set parallel.tp=2
run dp2xep2 2 --set parallel.dp=2 --set parallel.ep=2
run tp2xdp2xep2 4 --set parallel.tp=2 --set parallel.dp=2 --set parallel.ep=2
run tp2xetp2 2 --set parallel.tp=2 --set parallel.etp=2
run dp2xetp2 2 --set parallel.dp=2 --set parallel.etp=2

set +e
MOE_TEST_NAN_STEP=3 MOE_TEST_NAN_PARAM=layers.0.attention.wq.weight mpirun --oversubscribe -np 4 "$MOE_BIN" train \
  "${args[@]}" --set train.eval_every=0 --set parallel.tp=2 --set parallel.dp=2 --run-dir "$WORK/nan" >"$WORK/out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$WORK/out"; fail "exit $rc, expected 1"; }
grep -q "non-finite loss at step 3 " "$WORK/out" || { cat "$WORK/out"; fail "no message naming step 3"; }
grep -q "first non-finite activation in forward order: layers.0.attention q (after RoPE)" "$WORK/out" ||
  { cat "$WORK/out"; fail "the first non-finite tensor is not layer 0's q"; }
grep -q "non-finite parameters: layers.0.attention.wq.weight (1 non-finite)" "$WORK/out" ||
  { cat "$WORK/out"; fail "the NaN parameter is not named once"; }
echo "tp 2 x dp 2: non-finite step 3 located at layer 0's q"
