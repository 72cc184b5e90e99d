#!/usr/bin/env bash
# Pipeline parallelism composed with data and expert parallelism: pp 2 x dp 2 with ep 2 (4 ranks)
# and pp 2 x dp 4 with ep 2 (8 ranks, edp 2 x ep 2 in each stage) match one process with the same
# micro-batches to 1e-5, routing statistics included (aux and z losses come from both stages).
# Capacity factor 1.25 makes the token drops (decided per global micro-batch) part of the check.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=5 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8 --set model.seq_len=32 --set model.d_model=32 --set model.n_layers=4
      --set model.moe_every=2 --set model.ffn_hidden=64 --set moe.expert_hidden=64
      --set moe.capacity_factor=1.25 --set parallel.microbatches=2)

# Drop fraction and load imbalance of every logged step agree too.
compare_routing() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
for x, y in zip(a, b):
    for k in ("dropped_frac", "max_over_mean", "aux_loss", "z_loss"):
        assert abs(x[k] - y[k]) <= 1e-5 * max(1.0, abs(x[k])), f"step {x['step']}: {k} {x[k]} vs {y[k]}"
    assert abs(x["grad_norm"] - y["grad_norm"]) <= 1e-4 * x["grad_norm"], f"step {x['step']}: grad_norm"
print("routing statistics and grad norms agree")
PY
}

"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/base"
for layout in "4 2" "8 4"; do
  set -- $layout
  n=$1 dp=$2 name="pp2_dp$2_ep2"
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" --set parallel.pp=2 --set parallel.dp="$dp" \
    --set parallel.ep=2 --run-dir "$WORK/$name"
  echo -n "$name: "
  compare_losses "$WORK/base/metrics.jsonl" "$WORK/$name/metrics.jsonl" 1e-5
  compare_routing "$WORK/base/metrics.jsonl" "$WORK/$name/metrics.jsonl"
done
# The load-balance profile holds both stages' MoE layers with the counts of the single process,
# and the a2a matrix adds up what the dispatchers of both stages moved: each kept assignment is a
# row of d_model floats sent four times (dispatch, combine, their backward twins).
/usr/bin/python3 - "$WORK/base/load_balance.h5" "$WORK/pp2_dp2_ep2/load_balance.h5" <<'PY' || fail "profile"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert a["tokens_per_expert"].shape == b["tokens_per_expert"].shape == (5, 2, 4), b["tokens_per_expert"].shape
assert (a["tokens_per_expert"][:] == b["tokens_per_expert"][:]).all(), "per-expert counts differ"
assert (a["dropped"][:] == b["dropped"][:]).all(), "drops differ"
kept = b["tokens_per_expert"][:].sum(axis=2) - b["dropped"][:]
a2a = b["a2a_bytes"][:]
assert a2a.shape == (5, 2, 2), a2a.shape
assert (a2a.reshape(5, 4).sum(axis=1) == 4 * 4 * 32 * kept.sum(axis=1)).all(), "a2a bytes"
print("profile: both stages' layers recorded; counts equal the single process")
PY

# The balancing bias: each stage updates its own layers from the step's global counts (summed over
# the micro-batches); the profile's bias rows come from the owning stages.
"$MOE_BIN" train "${args[@]}" --set moe.bias_update_rate=0.01 --run-dir "$WORK/bias_base"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set moe.bias_update_rate=0.01 --set parallel.pp=2 \
  --set parallel.dp=2 --set parallel.ep=2 --run-dir "$WORK/bias_pp2"
echo -n "bias pp2_dp2_ep2: "
compare_losses "$WORK/bias_base/metrics.jsonl" "$WORK/bias_pp2/metrics.jsonl" 1e-5
/usr/bin/python3 - "$WORK/bias_base/load_balance.h5" "$WORK/bias_pp2/load_balance.h5" <<'PY' || fail "bias rows"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert np.abs(a["bias"][:]).max() > 0, "the bias moved"
assert (a["bias"][:] == b["bias"][:]).all(), "bias rows differ"
print("bias rows equal the single process")
PY
