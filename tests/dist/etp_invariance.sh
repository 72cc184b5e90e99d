#!/usr/bin/env bash
# Expert tensor parallelism (each etp rank holds half of every local expert's hidden units; the
# etp group is the tp group, or with tp 1 a group of dp ranks): per-step losses within 1e-5 and
# gradient norms within 1e-4 of the single process, alone and folded with ep (the tolerance of
# tp_invariance.sh: the split changes only summation order).
# Checkpoints record the etp slices: same-layout resume is bit-exact, and an etp 2 checkpoint
# resumes on one process with the uninterrupted losses. Unsupported or non-dividing etp: exit 2.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=1 --set train.batch_size=8 --set model.seq_len=32
      --set checkpoint.every=0 --set profile.load_balance=false)
etp2=(--set parallel.tp=2 --set parallel.etp=2)

run() {
  local name=$1 n=$2; shift 2
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never "$@" --run-dir "$WORK/$name"
  echo -n "$name: "
  compare_losses "$WORK/one/metrics.jsonl" "$WORK/$name/metrics.jsonl" 1e-5
  compare_norms "$WORK/one/metrics.jsonl" "$WORK/$name/metrics.jsonl"
}

# Refused layouts name the key (exit 2) before any work.
expect_exit 2 "$MOE_BIN" train "${args[@]}" --set parallel.tp=4 --set parallel.etp=2 --set model.n_kv_heads=4 \
  --run-dir "$WORK/refused"  # 1 < etp < tp
grep -q "parallel.etp" "$WORK/stderr" || fail "no parallel.etp in: $(cat "$WORK/stderr")"
expect_exit 2 "$MOE_BIN" train "${args[@]}" --set moe.expert_hidden=129 --set parallel.etp=2 --set parallel.tp=2 \
  --run-dir "$WORK/refused"
grep -q "moe.expert_hidden" "$WORK/stderr" || fail "no moe.expert_hidden in: $(cat "$WORK/stderr")"

"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/one"
run etp2 2 "${etp2[@]}"
run etp2xdp2xep2 4 "${etp2[@]}" --set parallel.dp=2 --set parallel.ep=2
run etp2xdp4xep2 8 "${etp2[@]}" --set parallel.dp=4 --set parallel.ep=2
# tp 1: the etp group spans dp ranks with different tokens (rows gathered over etp), alone, with
# ep (dp 4 = ep 2 x etp 2) and with ZeRO 2 (expert slices sharded over edp).
run dp2etp2 2 --set parallel.dp=2 --set parallel.etp=2
run dp4xep2xetp2 4 --set parallel.dp=4 --set parallel.ep=2 --set parallel.etp=2
run dp4xetp2zero2 4 --set parallel.dp=4 --set parallel.etp=2 --set parallel.zero_stage=2

# Checkpoints: etp 2 x ep 2, 2 steps + resume == 4 straight steps, exactly; etp 2 -> one process.
big=("${etp2[@]}" --set parallel.dp=2 --set parallel.ep=2)
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${big[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/split" --exit-after 2
cp -r "$WORK/split" "$WORK/to1"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${big[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split"
echo -n "etp2xdp2xep2 -> same: "
compare_losses "$WORK/etp2xdp2xep2/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
python3 - "$WORK/split/checkpoints/step_00000002/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["layout"]["etp"] == 2, m["layout"]
s = m["layout"]["tensor_slices"]
# MoE ranks (edp, ep, etp): 0 (0,0,0) 1 (0,0,1) 2 (0,1,0) 3 (0,1,1): experts 0-1 / 2-3, hidden halves.
w1, w2 = s["layers.0.moe.experts.w1"], s["layers.0.moe.experts.w2"]
assert w1["global_shape"] == [4, 128, 64], w1
assert [(p["rank"], p["start"]) for p in w1["pieces"]] == [(0, [0, 0, 0]), (1, [0, 64, 0]), (2, [2, 0, 0]), (3, [2, 64, 0])], w1
assert [p["start"] for p in w2["pieces"]] == [[0, 0, 0], [0, 0, 64], [2, 0, 0], [2, 0, 64]], w2
assert all(p["shape"] == [2, 64, 64] for p in w1["pieces"]), w1
PY
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --run-dir "$WORK/to1"
echo -n "etp2xdp2xep2 -> 1: "
compare_losses "$WORK/one/metrics.jsonl" "$WORK/to1/metrics.jsonl" 1e-5
# etp over dp ranks (tp 1): an etp 2 checkpoint resumes on one process too.
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.dp=2 --set parallel.etp=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/dp_to1" --exit-after 2
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --run-dir "$WORK/dp_to1"
echo -n "dp2etp2 -> 1: "
compare_losses "$WORK/one/metrics.jsonl" "$WORK/dp_to1/metrics.jsonl" 1e-5
