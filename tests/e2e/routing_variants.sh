#!/usr/bin/env bash
# The routing examples train through the CLI: the loss falls, the balancing bias is recorded in
# load_balance.h5 and moves by exactly +-bias_update_rate per step, expert choice keeps every
# expert at its capacity, and a routing key combination that makes no sense exits 2 naming the key.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
for cfg in routing_deepseek routing_expert_choice; do
  "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/examples/$cfg.yaml" --set data.path="$WORK/fortunes" \
    --set train.steps=20 --set train.batch_size=4 --set checkpoint.resume=never --run-dir "$WORK/$cfg" --quiet
done
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys
import h5py, numpy as np
work = sys.argv[1]
for cfg in ["routing_deepseek", "routing_expert_choice"]:
    rows = [json.loads(l) for l in open(f"{work}/{cfg}/metrics.jsonl")]
    first, last = rows[0]["lm_loss"], rows[-1]["lm_loss"]
    print(f"{cfg}: lm_loss {first:.3f} -> {last:.3f}")
    assert last < first - 1.0, f"{cfg}: the loss did not fall ({first} -> {last})"
with h5py.File(f"{work}/routing_deepseek/load_balance.h5") as f:
    bias = f["bias"][:]  # (S, L, E)
    steps = np.diff(np.concatenate([np.zeros_like(bias[:1]), bias]), axis=0)
    assert np.allclose(np.abs(steps[np.abs(steps) > 0]), 1e-3, atol=1e-6), "bias steps are not +-rate"
    assert np.any(bias[-1] != 0), "the balancing bias never moved"
with h5py.File(f"{work}/routing_expert_choice/load_balance.h5") as f:
    tpe = f["tokens_per_expert"][:]  # capacity = ceil(1.0 * 4*64 * 2 / 4) = 128, ties may add a few
    assert tpe.min() >= 128 and tpe.max() <= 130, tpe.min()
PY
expect_exit 2 "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/examples/routing_expert_choice.yaml" \
  --set data.path="$WORK/fortunes" --set moe.bias_update_rate=0.001 --run-dir "$WORK/bad"
grep -q "moe.bias_update_rate" "$WORK/stderr" || fail "the error does not name moe.bias_update_rate"
echo "routing e2e ok"
