#!/usr/bin/env bash
# ZeRO with tensor parallelism: each tp rank shards its own slices over dp (expert slices over
# edp). Per-step losses within 1e-5 and gradient norms within 1e-4 of the single process with
# zero_stage 0 (the tolerances of tp_invariance.sh): stage 1 with tp 2 x dp 2 x ep 2; stage 2 with
# tp 2 x dp 2, tp 2 x dp 2 x ep 2 (experts replicated over tp: the 1/tp expert-gradient scale
# applies to the shard) and etp 2 x dp 2 x ep 2; stage 3 with tp 2 x dp 2 x ep 2 and etp 2 x dp 2 x
# ep 2. A stage-2 etp checkpoint resumes bit-exactly, and under stage 0 on one process.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=4 --set train.log_every=1 --set train.batch_size=8 --set model.seq_len=32
      --set checkpoint.every=0 --set profile.load_balance=false)

"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/one"
tp2dp2=(--set parallel.tp=2 --set parallel.dp=2)
for run in 1:tp2xdp2xep2 2:tp2xdp2 2:tp2xdp2xep2 2:etp2xdp2xep2 3:tp2xdp2xep2 3:etp2xdp2xep2; do
  stage=${run%%:*} name=${run#*:}
  case $name in
    tp2xdp2) extra=() ;;
    tp2xdp2xep2) extra=(--set parallel.ep=2) ;;
    etp2xdp2xep2) extra=(--set parallel.ep=2 --set parallel.etp=2) ;;
  esac
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${tp2dp2[@]}" "${extra[@]}" \
    --set parallel.zero_stage=$stage --set checkpoint.resume=never --run-dir "$WORK/z${stage}_$name"
  echo -n "zero $stage, $name: "
  compare_losses "$WORK/one/metrics.jsonl" "$WORK/z${stage}_$name/metrics.jsonl" 1e-5
  compare_norms "$WORK/one/metrics.jsonl" "$WORK/z${stage}_$name/metrics.jsonl"
done

# Stage 2, etp 2 x dp 2 x ep 2: 2 steps + resume == 4 straight steps exactly; the checkpoint (full
# moments per tp and expert slice) also resumes under stage 0 on one process.
z2=("${tp2dp2[@]}" --set parallel.ep=2 --set parallel.etp=2 --set parallel.zero_stage=2)
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z2[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/split" --exit-after 2
cp -r "$WORK/split" "$WORK/split_one"
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" "${z2[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split"
echo -n "zero 2 tp resume: "
compare_losses "$WORK/z2_etp2xdp2xep2/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split_one"
echo -n "zero 2 tp checkpoint resumed on one process: "
compare_losses "$WORK/one/metrics.jsonl" "$WORK/split_one/metrics.jsonl" 1e-5
