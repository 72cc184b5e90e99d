#!/usr/bin/env bash
# The load-balance profile under expert parallelism (mpirun -np 2, dp=2, ep=2): a2a_bytes is an
# (S, 2, 2) matrix whose total equals the bytes the dispatchers moved. Each kept assignment is one
# row of d_model floats sent four times per step (dispatch, combine and their backward twins), so
# per step: 4 x 4 bytes x D x sum over layers of (assignments - dropped); the matrix sums what each
# rank's EpDispatcher counted, so this checks it against the routing counts.
source "$(dirname "$0")/../lib/common.sh"
PY=/usr/bin/python3
prepare_fortunes
run() {
  mpirun -np 2 "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet \
    --set data.path="$WORK/fortunes" --set parallel.dp=2 --set parallel.ep=2 --set train.steps=6 \
    --set train.log_every=2 --set checkpoint.every=0 --set checkpoint.resume=never "$@" >/dev/null
}
run --run-dir "$WORK/dropless" --set profile.trace=trace.json --set profile.trace_steps=3
run --run-dir "$WORK/capped" --set moe.capacity_factor=1.0
for r in dropless capped; do
  $PY - "$WORK/$r/load_balance.h5" <<'PYEOF' || fail "$r: a2a_bytes"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
D = 64  # configs/tiny.yaml d_model
a2a = f["a2a_bytes"][:]
S = len(f["step"])
assert a2a.shape == (S, 2, 2) and S == 6, a2a.shape
kept = f["tokens_per_expert"][:].sum(axis=2) - f["dropped"][:]   # (S, L)
want = 4 * 4 * D * kept.sum(axis=1)
assert (a2a.reshape(S, 4).sum(axis=1) == want).all(), (a2a.reshape(S, 4).sum(axis=1), want)
assert (a2a[:, 0, 1] > 0).all() and (a2a[:, 1, 0] > 0).all(), "both ranks send to each other"
ph = f["phase_seconds"][:]
names = [str(p) for p in f["phase_seconds"].attrs["phases"]]
assert (ph[:, names.index("comm_wait")] > 0).all(), "communication waits are timed"
assert (ph[:, :-1].sum(axis=1) <= ph[:, -1] * 1.0001).all(), "phases add up to at most the step"
print(sys.argv[1].split("/")[-2], "dropped", int(f["dropped"][:].sum()), "bytes", int(a2a.sum()))
PYEOF
done
"$MOE_BIN" profile "$WORK/capped" | grep -q "all-to-all bytes over the run" || fail "report lacks the a2a matrix"
for rank in 0 1; do
  $PY -c "import json,sys; e=json.load(open(sys.argv[1]))['traceEvents']; \
assert {x['pid'] for x in e} == {$rank}; assert any(x['name']=='comm_wait' and x['tid']==1 for x in e)" \
    "$WORK/dropless/trace.rank$rank.json" || fail "trace of rank $rank"
done
echo "dist profile under ep: ok"
