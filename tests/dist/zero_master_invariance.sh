#!/usr/bin/env bash
# ZeRO 1 and 2 under bf16 and fp16 shard the fp32 master weights (src/train/sharded_master.h): each
# rank updates its owned floats, rounds them into the compute copy and the copy is all-gathered as
# 16-bit codes. Rounding is elementwise and the codes decode to the same floats, so the arithmetic
# is that of stage 0: without clipping (optim.grad_clip 0 here; clipping would bring in the gradient
# norm, whose sum runs in another order) the per-step losses of stage 1 and 2 at dp 2 and
# dp 2 x ep 2 equal those of stage 0 on the same layout bit for bit (dp 2: a sum of two gradients
# does not depend on the reduction algorithm). Every layout, dp 4 included (four-term sums:
# reduce-scatter and all-reduce may order them differently), is also compared with the single
# process of the same precision to 5e-5, the bound of tests/dist/precision_invariance.sh.
# With clipping on: tests/dist/zero_master.sh (tp, etp, pp) and precision_invariance.sh.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8 --set optim.grad_clip=0)
run() {  # run NAME NP SETTINGS...
  local name=$1 np=$2; shift 2
  local sets=()
  for kv in "$@"; do sets+=(--set "$kv"); done
  mpirun --oversubscribe -np "$np" "$MOE_BIN" train "${args[@]}" "${sets[@]}" --run-dir "$WORK/$name"
}
for p in bf16 fp16; do
  run ${p}_base 1 train.precision=$p
  for layout in "parallel.dp=2" "parallel.dp=2 parallel.ep=2"; do
    name=${p}_${layout// /_}
    run ${name}_z0 2 train.precision=$p $layout
    for stage in 1 2; do
      run ${name}_z$stage 2 train.precision=$p $layout parallel.zero_stage=$stage
      echo -n "$p $layout zero $stage vs zero 0: "
      compare_losses "$WORK/${name}_z0/metrics.jsonl" "$WORK/${name}_z$stage/metrics.jsonl" 0
      echo -n "$p $layout zero $stage vs one process: "
      compare_losses "$WORK/${p}_base/metrics.jsonl" "$WORK/${name}_z$stage/metrics.jsonl" 5e-5
    done
  done
  for stage in 1 2; do
    run ${p}_dp4_z$stage 4 train.precision=$p parallel.dp=4 parallel.zero_stage=$stage
    echo -n "$p dp 4 zero $stage vs one process: "
    compare_losses "$WORK/${p}_base/metrics.jsonl" "$WORK/${p}_dp4_z$stage/metrics.jsonl" 5e-5
  done
done
python3 - "$WORK" <<'PY'
import glob, json, os, sys
w = sys.argv[1]
for p in ("bf16", "fp16"):
    base = [json.loads(l)["loss"] for l in open(f"{w}/{p}_base/metrics.jsonl")]
    worst = 0.0
    for f in glob.glob(f"{w}/{p}_*_z[12]/metrics.jsonl"):
        got = [json.loads(l)["loss"] for l in open(f)]
        worst = max(worst, max(abs(a - b) / abs(a) for a, b in zip(base, got)))
    print(f"{p}: largest relative difference to one process over zero 1 / 2 layouts: {worst:.1e}")
PY
