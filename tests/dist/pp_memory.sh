#!/usr/bin/env bash
# A pipeline stage keeps only its own tensors resident: rank 0 (stage 0: embeddings and the first
# L/pp blocks of an 8-block model) reports mem_params and mem_grads (bytes really resident,
# mincore) near 1/pp of the pp 1 run's plus the embeddings, and the optimizer moments likewise;
# the losses stay those of pp 1.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=2 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.resume=never
      --set checkpoint.every=0 --set model.n_layers=8)
for pp in 1 2 4; do
  mpirun --oversubscribe -np $pp "$MOE_BIN" train "${args[@]}" --set parallel.pp=$pp --run-dir "$WORK/pp$pp"
done
python3 - "$WORK" <<'PY'
import json, sys
def last(pp):
    return json.loads(open(f"{sys.argv[1]}/pp{pp}/metrics.jsonl").readlines()[-1])
one = last(1)
for pp, share in ((2, 0.6), (4, 0.35)):  # 1/pp of the blocks + the embeddings (+ partial pages)
    r = last(pp)
    assert r["loss"] == one["loss"], (pp, r["loss"], one["loss"])
    for key in ("mem_params", "mem_grads", "mem_optimizer"):
        assert r[key] < share * one[key], f"pp {pp}: {key} {r[key]} >= {share} x {one[key]}"
    print(f"pp {pp}: stage 0 params {r['mem_params']} of {one['mem_params']} bytes, same losses")
PY
