#!/usr/bin/env bash
# parallel.recompute under expert parallelism: edp 2 x ep 2 (4 ranks, dense and MoE layers) with
# recompute block (forward re-run in backward, a second dispatch and combine all-to-all) and moe
# (experts recomputed from the kept dispatched tokens) gives the losses and gradient norms of
# recompute none bit for bit, and keeps fewer activation bytes (mem_activations); the same with
# expert tensor parallelism (etp over dp ranks, and etp = tp).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8 --set model.n_layers=4 --set model.moe_every=2 --set moe.router_jitter=0.05
      --set parallel.dp=4 --set parallel.ep=2)
# Expert tensor parallelism too: etp over dp ranks (dp 4 = ep 2 x etp 2; recompute moe re-runs the
# experts on the kept gathered rows) and etp = tp 2 (tp 2 x dp 2).
for layout in ep2 etp2 tp2; do
  case $layout in
    ep2) lay=() ;;
    etp2) lay=(--set parallel.etp=2) ;;
    tp2) lay=(--set parallel.dp=2 --set parallel.tp=2 --set parallel.ep=1 --set parallel.etp=2) ;;
  esac
  for mode in none block moe; do
    mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${lay[@]}" --set parallel.recompute=$mode \
      --run-dir "$WORK/$layout$mode"
  done
  for mode in block moe; do
    python3 - "$WORK/${layout}none/metrics.jsonl" "$WORK/$layout$mode/metrics.jsonl" "$layout $mode" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 4, f"{len(a)} vs {len(b)} logged steps"
for x, y in zip(a, b):
    for k in ("loss", "aux_loss", "grad_norm", "dropped_frac", "max_over_mean"):
        assert x[k] == y[k], f"{sys.argv[3]} step {x['step']}: {k} {y[k]!r} vs none {x[k]!r}"
    assert y["mem_activations"] < x["mem_activations"], (sys.argv[3], y["mem_activations"], x["mem_activations"])
print(f"recompute {sys.argv[3]}: 4 steps bit-identical to none; mem_activations "
      f"{b[-1]['mem_activations']} < {a[-1]['mem_activations']}")
PY
  done
done
# The profile readers take a recompute run's load_balance.h5 (same format; a2a bytes include the re-run).
"$MOE_BIN" profile "$WORK/ep2block" --json >"$WORK/profile.json"
python3 - "$WORK/profile.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
lb = p["load_balance"]
assert lb["phase_mean_seconds"]["attention"] > 0, lb["phase_mean_seconds"]
assert len(lb["a2a_total_bytes"]) == 2, lb.keys()
print("moe profile reads the block run")
PY
