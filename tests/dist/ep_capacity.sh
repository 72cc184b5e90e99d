#!/usr/bin/env bash
# Layout invariance with token dropping: capacity_factor 1.0 under both drop policies gives the
# single-process losses (1e-5) for edp x ep = 2x2 and 4x1, because capacity is decided over the
# global micro-batch. The base run must actually drop tokens for the test to mean anything.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
for policy in probs position; do
  args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
        --set train.steps=5 --set train.log_every=1 --set checkpoint.resume=never --set train.batch_size=8
        --set moe.capacity_factor=1.0 --set moe.drop_policy=$policy)
  "$MOE_BIN" train "${args[@]}" --run-dir "$WORK/base-$policy"
  python3 - "$WORK/base-$policy/metrics.jsonl" <<'PY'
import json, sys
d = [json.loads(l)["dropped_frac"] for l in open(sys.argv[1])]
assert max(d) > 0, f"capacity 1.0 dropped nothing: {d}"
PY
  for layout in 2x2 4x1; do
    edp=${layout%x*} ep=${layout#*x} n=$((edp * ep))
    mpirun --oversubscribe -np $n "$MOE_BIN" train "${args[@]}" --set parallel.dp=$n --set parallel.ep=$ep \
      --run-dir "$WORK/$policy-$layout"
    echo -n "$policy, edp x ep = $layout: "
    compare_losses "$WORK/base-$policy/metrics.jsonl" "$WORK/$policy-$layout/metrics.jsonl" 1e-5
  done
done
