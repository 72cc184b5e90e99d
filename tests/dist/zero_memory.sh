#!/usr/bin/env bash
# Per-rank memory under ZeRO (metrics.jsonl, rank 0): the sharded model state falls as 1/dp.
# Stage 1 shards the optimizer moments, stage 2 also keeps a reduced gradient shard and releases
# each stage's full gradients once reduced (mem_grads = the shard plus at most two stages, S each,
# S = mem_stage_max: the bytes resident at the peak, measured with mincore). With S(n) a sharded part on
# dp = n: n * S(n) <= S(1), short by at most the bucket tails the last rank owns, 8 bytes x (n - 1)
# floats per bucket (bound used: 8 n bytes x 16 buckets). Stage 1 moments at dp 1 exceed stage 0's
# only by the alignment padding and non-AdamW tensors inside buckets (< 2% here).
# Stage 3 keeps only the owned parameters plus at most two gathered stages (the one in use and the
# prefetched next one): mem_params <= P/n + 2 (1 - 1/n) S with S = mem_stage_max, the largest stage;
# gradients: the shard plus at most two whole stages. Slack: partial pages at bucket edges (64 KiB).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=1 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.resume=never
      --set model.n_layers=8)  # enough stages for two of them to be a small part of the model
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/z0_1"
for stage in 1 2 3; do
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
slack = 64 * 1024  # partial pages at bucket edges
def grad_shard(n):  # mem_grads of stage 2 minus its transient full-gradient stages
    return rec(f"z1_{n}")["mem_optimizer"] // 2
for stage in (2, 3):
    for n in (1, 2, 4):
        r = rec(f"z{stage}_{n}")
        S = r["mem_stage_max"]
        assert grad_shard(n) < r["mem_grads"] <= grad_shard(n) + 2 * S + slack, f"zero {stage} dp {n}: {r}"
        assert r["mem_grads"] < z0["mem_grads"] or n == 1, f"zero {stage} dp {n}: gradients did not fall"
    print(f"z{stage}: mem_grads <= shard + 2 S for dp 1, 2, 4")
check_falls("z3", lambda r: r["mem_optimizer"])
full = z0["mem_params"]
for n in (2, 4):
    r = rec(f"z3_{n}")
    bound = full / n + 2 * (1 - 1 / n) * r["mem_stage_max"] + slack
    assert full / n <= r["mem_params"] <= bound, f"zero 3 dp {n}: params {r['mem_params']} > {bound}"
    assert r["mem_params"] < rec(f"z2_{n}")["mem_params"], "stage 3 must hold fewer parameter bytes than stage 2"
    print(f"z3 dp {n}: params {r['mem_params']} <= {bound:.0f} (P/n + 2(1-1/n) S), grads {r['mem_grads']}")
PY
