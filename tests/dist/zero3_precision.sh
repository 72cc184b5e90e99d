#!/usr/bin/env bash
# ZeRO stage 3 with train.precision bf16: the compute copy of the weights is rounded per gathered
# stage and released with it, so mem_compute_weights (its peak resident bytes, mincore) is at most
# two stages, 2 S + slack (S = mem_stage_max, the largest stage; slack: the partial pages at bucket
# edges, 64 KiB as in zero_memory.sh), well below the fp32 parameter bytes P that the zero 2 run's
# full copy takes; the master weights keep stage 3's bound P/n + 2 (1 - 1/n) S. mem_bytes counts it.
# Resume: 2 steps + resume + 2 steps of zero 3 with fp16 (loss scaler in the checkpoint) at
# dp x ep = 2x2 reproduce 4 straight steps exactly.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=2 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.resume=never
      --set checkpoint.every=0 --set model.n_layers=8 --set train.precision=bf16 --set parallel.dp=2)
for stage in 2 3; do
  mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set parallel.zero_stage=$stage --run-dir "$WORK/z$stage"
done
python3 - "$WORK" <<'PY'
import json, sys
def recs(name):
    return [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")]
full = recs("z2")[0]["mem_compute_weights"]  # the whole copy: 4 bytes per parameter
z2 = recs("z2")[0]  # zero 2 keeps the whole copy, and half of the master (sharded, tests/dist/zero_master.sh)
assert full / 2 <= z2["mem_params"] < full, z2
slack = 64 * 1024
for r in recs("z3"):
    S, cw = r["mem_stage_max"], r["mem_compute_weights"]
    parts = ["mem_params", "mem_grads", "mem_optimizer", "mem_activations", "mem_comm", "mem_compute_weights"]
    assert r["mem_bytes"] == sum(r[k] for k in parts), r
    assert 0 < cw <= 2 * S + slack, f"step {r['step']}: compute copy {cw} > 2 S + slack = {2 * S + slack}"
    assert cw < full / 2, f"step {r['step']}: compute copy {cw} not well below the fp32 parameters {full}"
    bound = full / 2 + S + slack
    assert r["mem_params"] <= bound, f"step {r['step']}: master {r['mem_params']} > {bound}"
    print(f"step {r['step']}: mem_compute_weights {cw} <= 2 S + slack = {2 * S + slack} (full copy {full}),"
          f" mem_params {r['mem_params']}")
PY

r=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" --set train.steps=4
   --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0 --set train.precision=fp16
   --set parallel.dp=2 --set parallel.ep=2 --set parallel.zero_stage=3)
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${r[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 2
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${r[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${r[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
echo -n "zero 3 fp16 resume: "
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
