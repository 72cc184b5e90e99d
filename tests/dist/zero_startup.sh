#!/usr/bin/env bash
# Start-up without a whole copy of the model: with a sharded master (ZeRO 3; ZeRO 1 with bf16)
# each rank initialises only its owned ranges and the whole-model buffers (parameters, gradients,
# a checkpoint-loading AdamW, the compute copy) keep their untouched pages untouched
# (src/core/page_vector.h). mem_startup_peak_rss is the process's peak RSS when step 1 starts
# (VmHWM). Two models on the same grid (dp 4, 4 ranks): the tiny one (P = 1 MB) gives the process's
# own baseline; the larger one (d_model 256, 4 layers, 8 experts: P = 54 MB of fp32) adds only its
# sharded state: P/4 of master, 2 P/4 of AdamW moments, and under ZeRO 3 P/4 of gradient shard,
# so at most 1.25 P (measured 1.02 P for ZeRO 3, 0.83 P for ZeRO 1; before, each rank initialised
# the whole model and allocated whole buffers: 3.4 P for ZeRO 3 with bf16, docs/PERFORMANCE.md).
# The initial values are those of the unsharded init: tests/dist/zero_master_invariance.sh (bit
# for bit against ZeRO 0) and moe_unit_tests --gtest_filter=ZeroMaster.OwnedRangeInit*.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" --set train.steps=1
      --set train.log_every=1 --set train.batch_size=8 --set model.seq_len=32 --set checkpoint.every=0
      --set checkpoint.resume=never --set profile.load_balance=false --set parallel.dp=4 --set train.precision=bf16)
big=(--set model.d_model=256 --set model.n_layers=4 --set model.ffn_hidden=512 --set moe.num_experts=8
     --set moe.expert_hidden=512)
for stage in 1 3; do
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.zero_stage=$stage --run-dir "$WORK/small$stage"
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${big[@]}" --set parallel.zero_stage=$stage \
    --run-dir "$WORK/big$stage"
done
python3 - "$WORK" <<'PY'
import json, sys
def rec(name):
    return json.loads(open(f"{sys.argv[1]}/{name}/metrics.jsonl").readline())
for stage in (1, 3):
    small, big = rec(f"small{stage}"), rec(f"big{stage}")
    P = 2 * big["mem_optimizer"]  # the moments are 2 P / 4 (each rank's shard of m and v)
    added = big["mem_startup_peak_rss"] - small["mem_startup_peak_rss"]
    assert small["mem_startup_peak_rss"] > 0, small
    assert added <= 1.25 * P, f"zero {stage}: start-up added {added} bytes for a {P}-byte model (> 1.25 P)"
    print(f"zero {stage} dp 4: start-up peak RSS {big['mem_startup_peak_rss']} vs {small['mem_startup_peak_rss']}"
          f" for the tiny model: + {added / P:.2f} P (P = {P})")
PY
