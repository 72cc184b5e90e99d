#!/usr/bin/env bash
# Per-rank memory under ZeRO (metrics.jsonl, rank 0): the sharded model state falls as 1/dp.
# Stage 1 shards the optimizer moments, stage 2 also keeps a reduced gradient shard (mem_grads =
# the full backward workspace, as big as mem_params, plus the shard). With S(n) a sharded part on
# dp = n: n * S(n) <= S(1), short by at most the bucket tails the last rank owns, 8 bytes x (n - 1)
# floats per bucket (bound used: 8 n bytes x 16 buckets). Stage 1 moments at dp 1 exceed stage 0's
# only by the alignment padding and non-AdamW tensors inside buckets (< 2% here).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=1 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.resume=never)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/z0_1"
for stage in 1 2; do
  for n in 1 2 4; do
    mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set parallel.dp=$n --set parallel.zero_stage=$stage \
      --run-dir "$WORK/z${stage}_$n"
  done
done
python3 - "$WORK" <<'PY'
import json, sys
def rec(name):
    r = json.loads(open(f"{sys.argv[1]}/{name}/metrics.jsonl").readline())
    parts = ["mem_params", "mem_grads", "mem_optimizer", "mem_activations", "mem_comm"]
    assert r["mem_bytes"] == sum(r[k] for k in parts), r
    return r
z0 = rec("z0_1")
assert z0["mem_grads"] == z0["mem_params"] and z0["mem_comm"] == 0, z0
assert z0["mem_optimizer"] <= rec("z1_1")["mem_optimizer"] <= 1.02 * z0["mem_optimizer"]
def check_falls(label, part):
    full = part(rec(f"{label}_1"))
    for n in (2, 4):
        got = part(rec(f"{label}_{n}"))
        assert full - 8 * n * 16 <= n * got <= full, f"{label} dp {n}: {n} x {got} vs {full}"
        print(f"{label} dp {n}: {got} bytes = 1/{n} of {full} (within {8 * n * 16})")
for stage in (1, 2):
    check_falls(f"z{stage}", lambda r: r["mem_optimizer"])
    for n in (1, 2, 4):
        r = rec(f"z{stage}_{n}")
        assert r["mem_params"] == z0["mem_params"], "stages 1 and 2 keep every parameter"
        assert (r["mem_grads"] == r["mem_params"]) == (stage == 1), r
check_falls("z2", lambda r: r["mem_grads"] - r["mem_params"])  # the reduced gradient shard
PY
