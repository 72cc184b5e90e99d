#!/usr/bin/env bash
# Layout invariance for tensor parallelism: per-step losses and gradient norms of tp 2 and tp 4,
# alone and with dp and ep, match the single process to 1e-5 (dense and MoE tiny models).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
common=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
        --set train.steps=3 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
        --set train.batch_size=8 --set model.seq_len=32)

# run NAME RANKS EXTRA...: one layout of the current model, compared against $WORK/$model-base.
run() {
  local name=$1 n=$2; shift 2
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" "$@" --run-dir "$WORK/$model-$name"
  echo -n "$model $name: "
  compare_losses "$WORK/$model-base/metrics.jsonl" "$WORK/$model-$name/metrics.jsonl" 1e-5
  compare_norms "$WORK/$model-base/metrics.jsonl" "$WORK/$model-$name/metrics.jsonl"
}

# Dense model, multi-head attention (kv heads = heads, so tp 4 divides them).
model=dense args=("${common[@]}" --set model.moe_every=0 --set model.n_kv_heads=4)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/$model-base"
run tp2 2 --set parallel.tp=2
run tp4 4 --set parallel.tp=4
run tp2xdp2 4 --set parallel.tp=2 --set parallel.dp=2

# MoE model with grouped-query attention (2 kv heads: tp 2 holds one each).
model=moe args=("${common[@]}")
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/$model-base"
run tp2 2 --set parallel.tp=2
run tp2xdp2 4 --set parallel.tp=2 --set parallel.dp=2
run tp2xdp2xep2 4 --set parallel.tp=2 --set parallel.dp=2 --set parallel.ep=2
run tp2xdp4xep2 8 --set parallel.tp=2 --set parallel.dp=4 --set parallel.ep=2

# MoE model, multi-head attention, tp 4 (experts replicated over tp, computed by every tp rank).
model=moe4 args=("${common[@]}" --set model.n_kv_heads=4)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/$model-base"
run tp4 4 --set parallel.tp=4
