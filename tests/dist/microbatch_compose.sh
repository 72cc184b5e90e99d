#!/usr/bin/env bash
# Micro-batching (gradient accumulation, pp 1) composed with tensor parallelism, ZeRO (1-3) and
# recomputation, and pipeline parallelism composed with tensor and expert tensor parallelism, ZeRO
# (1-3), recomputation and bf16: each matches one process with the same micro-batches (and
# precision) to 1e-5; also interleaved 1F1B with dp and ep. Recomputation under pp is bit-identical
# to the same layout without it.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8 --set model.seq_len=32 --set model.d_model=32 --set model.n_layers=4
      --set model.moe_every=2 --set model.ffn_hidden=64 --set moe.expert_hidden=64
      --set parallel.microbatches=2)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/base"
run() {
  local name=$1 n=$2; shift 2
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" "$@" --run-dir "$WORK/$name"
  echo -n "$name: "
  compare_losses "$WORK/base/metrics.jsonl" "$WORK/$name/metrics.jsonl" 1e-5
}
run tp2 2 --set parallel.tp=2
run dp2_zero1 2 --set parallel.dp=2 --set parallel.zero_stage=1
run dp2_ep2_zero2 2 --set parallel.dp=2 --set parallel.ep=2 --set parallel.zero_stage=2
run pp2_tp2 4 --set parallel.pp=2 --set parallel.tp=2
run pp2_dp2_zero1 4 --set parallel.pp=2 --set parallel.dp=2 --set parallel.zero_stage=1
run pp2_dp2_ep2_zero2 4 --set parallel.pp=2 --set parallel.dp=2 --set parallel.ep=2 --set parallel.zero_stage=2
run pp2_v2_dp2_ep2 4 --set parallel.pp=2 --set parallel.virtual_stages=2 --set parallel.dp=2 --set parallel.ep=2
run dp2_zero3 2 --set parallel.dp=2 --set parallel.zero_stage=3
run pp2_dp2_zero3 4 --set parallel.pp=2 --set parallel.dp=2 --set parallel.zero_stage=3
run pp2_tp2_etp2 4 --set parallel.pp=2 --set parallel.tp=2 --set parallel.etp=2
run recompute_block 1 --set parallel.recompute=block
run pp2_recompute_moe 2 --set parallel.pp=2 --set parallel.recompute=moe
run pp2 2 --set parallel.pp=2
run pp2_recompute_block 2 --set parallel.pp=2 --set parallel.recompute=block --set parallel.schedule=gpipe
echo -n "pp 2 recompute block vs none: "
compare_losses "$WORK/pp2/metrics.jsonl" "$WORK/pp2_recompute_block/metrics.jsonl" 0
"$MOE_BIN" train "${args[@]}" --set train.precision=bf16 --run-dir "$WORK/bf16"
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${args[@]}" --set train.precision=bf16 --set parallel.pp=2 \
  --run-dir "$WORK/pp2_bf16"
echo -n "pp 2 bf16: "
compare_losses "$WORK/bf16/metrics.jsonl" "$WORK/pp2_bf16/metrics.jsonl" 1e-5
