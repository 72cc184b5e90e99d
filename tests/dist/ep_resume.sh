#!/usr/bin/env bash
# Checkpoints under DP and EP (edp x ep = 2x2): each rank writes its shard, and 3 steps + resume +
# 3 steps reproduce the losses of 6 straight steps exactly.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set parallel.dp=4 --set parallel.ep=2)
run() { mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "$@"; }
run --set checkpoint.resume=never --run-dir "$WORK/straight"
run --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
ckpt="$WORK/split/checkpoints/step_00000003"
python3 - "$ckpt/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["layout"]["ep"] == 2 and m["world"] == 4, m["layout"]
slices = m["layout"]["expert_slices"]
assert [s["rank"] for s in slices] == [0, 1] and [s["offset"] for s in slices] == [0, 2], slices
names = {r["rank"]: {t["name"]: t["shape"] for t in r["tensors"]} for r in m["ranks"]}
w1 = "param/layers.0.moe.experts.w1"
assert names[0][w1][0] == 2 and names[1][w1][0] == 2, "each ep rank writes its 2 of 4 experts"
assert "param/tok_embeddings.weight" in names[0] and "param/tok_embeddings.weight" not in names[1]
assert not names[2] and not names[3], "edp replicas write nothing"
PY
run --set checkpoint.resume=auto --run-dir "$WORK/split"
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
# A different number of experts cannot load: a checkpoint error naming the tensor and the file.
# (Another expert layout of the same experts reshards: tests/dist/reshard_*.sh.)
expect_exit 3 mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set moe.num_experts=8 \
  --set train.steps=7 --set checkpoint.resume=auto --run-dir "$WORK/split"
grep -q "layers.0.moe.router.weight" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no message naming the tensor"; }
grep -q "rank_0000" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no message naming the rank file"; }
