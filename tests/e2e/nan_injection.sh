#!/usr/bin/env bash
# Non-finite values: a NaN injected into layers.1.moe.experts.w1 before step 3 stops the run with
# exit 1 and a message naming step 3, the first non-finite activation (layer 1's experts) and the
# parameter; the last good checkpoint (step 2) is kept, intact and loadable. Also under mpirun
# with expert parallelism, where only the rank holding expert 0 has the NaN.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set checkpoint.every=2 --set train.log_every=1)
check_message() {
  grep -q "non-finite loss at step 3 " "$1" || { cat "$1"; fail "$2: no message naming step 3"; }
  grep -q "first non-finite activation in forward order: layers.1.moe.experts w1 x" "$1" ||
    { cat "$1"; fail "$2: the first non-finite tensor is not layer 1's expert w1 x"; }
  grep -q "non-finite parameters: layers.1.moe.experts.w1 (1 non-finite)" "$1" ||
    { cat "$1"; fail "$2: the NaN parameter is not named"; }
}

export MOE_TEST_NAN_STEP=3 MOE_TEST_NAN_PARAM=layers.1.moe.experts.w1
expect_exit 1 "$MOE_BIN" train "${args[@]}" --run-dir "$WORK/run"
check_message "$WORK/stderr" "1 rank"
[ "$(ls "$WORK/run/checkpoints")" = "step_00000002" ] || fail "checkpoints: $(ls "$WORK/run/checkpoints")"
[ "$(wc -l < "$WORK/run/metrics.jsonl")" -eq 2 ] || fail "the failed step was logged"
/usr/bin/python3 - "$WORK/run/checkpoints/step_00000002/rank_00000.h5" <<'PY'
import h5py, numpy as np, sys
f = h5py.File(sys.argv[1], "r")
names = []
f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
assert any(n.startswith("param/") for n in names)
for n in names:
    v = f[n][()]
    if np.issubdtype(np.asarray(v).dtype, np.floating):
        assert np.isfinite(v).all(), f"{n} holds non-finite values"
print(f"{len(names)} tensors of the kept checkpoint are finite")
PY
unset MOE_TEST_NAN_STEP MOE_TEST_NAN_PARAM
"$MOE_BIN" eval --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --set data.path="$WORK/fortunes" \
  --from "$WORK/run/checkpoints/step_00000002" --batches 1 --json > "$WORK/eval.json"
/usr/bin/python3 -c "import json,math,sys; l=json.load(open(sys.argv[1]))['loss']; assert math.isfinite(l), l" "$WORK/eval.json"
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/run"   # resumes from step 2 and finishes
[ -d "$WORK/run/checkpoints/step_00000006" ] || fail "resume after the failure did not finish"

set +e
MOE_TEST_NAN_STEP=3 MOE_TEST_NAN_PARAM=layers.1.moe.experts.w1 mpirun --oversubscribe -np 2 "$MOE_BIN" train \
  "${args[@]}" --set parallel.dp=2 --set parallel.ep=2 --run-dir "$WORK/run_ep" >"$WORK/out_ep" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$WORK/out_ep"; fail "ep=2: exit $rc, expected 1"; }
check_message "$WORK/out_ep" "ep=2"
[ "$(ls "$WORK/run_ep/checkpoints")" = "step_00000002" ] || fail "ep=2 checkpoints: $(ls "$WORK/run_ep/checkpoints")"
echo "non-finite step 3 diagnosed on 1 and 2 ranks; checkpoint step 2 kept and loadable"
