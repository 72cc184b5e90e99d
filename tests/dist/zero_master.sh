#!/usr/bin/env bash
# Sharded fp32 master weights under ZeRO 1 and 2 with bf16 / fp16 (src/train/sharded_master.h).
# 1. Memory (bf16, 8-layer tiny model, rank 0): the master bytes resident per rank (mem_params,
#    mincore) fall as 1/dp: P/n <= mem_params <= P/n + slack, P = the stage-0 master. Slack: the
#    owned range of a bucket keeps the partial pages at its two ends, at most 2 x 4 KiB per bucket;
#    17 buckets here (the head; per block its dense tensors and its experts, which never share a
#    bucket; the embeddings join block 0's dense bucket): 136 KiB (measured: 71-75 KiB at dp 2 and 4).
#    The compute copy stays whole (mem_compute_weights = P) and mem_bytes counts every part.
# 2. Resume: bf16 ZeRO 2 at dp x ep = 2x2 with the balancing bias on (updated outside the optimizer)
#    and the load-balance profile, 2 steps + resume + 2 steps = 4 straight steps exactly; the
#    checkpoint holds the whole master (the resumed run reads it back), and resumes on one process
#    under ZeRO 0 within 5e-5.
# 3. fp16 ZeRO 1 at dp 2 with an overflow at step 2 (skipped: no update) and periodic eval equals
#    ZeRO 0 at dp 2 bit for bit (no clipping: the same arithmetic), loss scale and eval loss included.
# 4. A NaN parameter stops the run with the non-finite diagnostic naming it (the master is gathered).
# 5. With tp 2 x dp 2, etp 2 x dp 2 and pp 2 x dp 2 (ZeRO 1 and 2), losses match one process of the
#    same precision (and micro-batches) to 5e-5, the bound of tests/dist/precision_invariance.sh.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
base=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" --set train.log_every=1
      --set train.batch_size=8 --set checkpoint.every=0)
run() {  # run NAME NP SETTINGS...: a fresh run of `base` plus the settings
  local name=$1 np=$2; shift 2
  local sets=()
  for kv in "$@"; do sets+=(--set "$kv"); done
  mpirun --oversubscribe -np "$np" "$MOE_BIN" train "${base[@]}" --set checkpoint.resume=never "${sets[@]}" \
    --run-dir "$WORK/$name"
}

# 1. Memory.
mem=(train.steps=1 model.n_layers=8 train.precision=bf16 profile.load_balance=false)
run m0 1 "${mem[@]}"
for stage in 1 2; do
  for n in 1 2 4; do run m${stage}_$n $n "${mem[@]}" parallel.dp=$n parallel.zero_stage=$stage; done
done
python3 - "$WORK" <<'PY'
import json, sys
def rec(name):
    r = json.loads(open(f"{sys.argv[1]}/{name}/metrics.jsonl").readline())
    parts = ["mem_params", "mem_grads", "mem_optimizer", "mem_activations", "mem_comm", "mem_compute_weights"]
    assert r["mem_bytes"] == sum(r[k] for k in parts), r
    return r
P = rec("m0")["mem_params"]
slack = 17 * 2 * 4096
for stage in (1, 2):
    for n in (1, 2, 4):
        r = rec(f"m{stage}_{n}")
        assert P / n <= r["mem_params"] <= P / n + slack, f"zero {stage} dp {n}: master {r['mem_params']} vs {P}/{n}"
        assert r["mem_compute_weights"] == P, f"zero {stage} dp {n}: the compute copy is whole: {r}"
        print(f"zero {stage} dp {n}: master {r['mem_params']} bytes = {n * r['mem_params'] / P:.4f} x P/{n} (P = {P})")
PY

# 2. Resume with the balancing bias.
r2=(train.steps=4 train.precision=bf16 parallel.dp=2 parallel.ep=2 parallel.zero_stage=2 moe.bias_update_rate=0.01)
sets=()
for kv in "${r2[@]}"; do sets+=(--set "$kv"); done
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${base[@]}" "${sets[@]}" --set checkpoint.resume=auto \
  --run-dir "$WORK/split" --exit-after 2
mpirun --oversubscribe -np 2 "$MOE_BIN" train "${base[@]}" "${sets[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split"
run straight 2 "${r2[@]}"
echo -n "bf16 zero 2 dp 2 x ep 2 resume: "
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 0
"$MOE_BIN" train "${base[@]}" --set train.steps=4 --set train.precision=bf16 --set moe.bias_update_rate=0.01 \
  --set checkpoint.resume="$WORK/split/checkpoints/step_00000002" --run-dir "$WORK/one"
tail -n 2 "$WORK/straight/metrics.jsonl" >"$WORK/straight_34.jsonl"
echo -n "its step-2 checkpoint on one process, zero 0: "
compare_losses "$WORK/straight_34.jsonl" "$WORK/one/metrics.jsonl" 5e-5

# 3. fp16 overflow skip and eval against ZeRO 0 on the same layout.
f16=(train.steps=5 train.precision=fp16 parallel.dp=2 optim.grad_clip=0 train.eval_every=2 train.eval_batches=2)
for stage in 0 1; do
  MOE_TEST_OVERFLOW_STEP=2 run ovf$stage 2 "${f16[@]}" parallel.zero_stage=$stage 2>"$WORK/err$stage"
done
python3 - "$WORK" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(f"{sys.argv[1]}/ovf{s}/metrics.jsonl")] for s in (0, 1))
assert len(a) == len(b) == 5
for x, y in zip(a, b):
    for k in ("loss", "loss_scale", "skipped_steps", "eval_loss"):
        assert x.get(k) == y.get(k), f"step {x['step']}: {k} {x.get(k)} vs {y.get(k)}"
assert b[1]["skipped_steps"] == 1 and b[1]["loss_scale"] == a[0]["loss_scale"] / 2, b[1]
assert "eval_loss" in b[1] and "eval_loss" in b[4]
print("fp16 zero 1 dp 2 with a skipped step and eval: equal to zero 0")
PY

# 4. A NaN parameter.
MOE_TEST_NAN_STEP=2 MOE_TEST_NAN_PARAM=layers.1.attention.wq.weight expect_exit 1 mpirun --oversubscribe -np 2 \
  "$MOE_BIN" train "${base[@]}" --set checkpoint.resume=never --set train.steps=3 --set train.precision=bf16 \
  --set parallel.dp=2 --set parallel.zero_stage=1 --run-dir "$WORK/nan"
grep -q "non-finite parameters: layers.1.attention.wq.weight" "$WORK/stdout" "$WORK/stderr" ||
  { cat "$WORK/stderr"; fail "the diagnostic does not name the NaN parameter"; }
echo "NaN parameter diagnosed"

# 5. tp, etp and pp.
run one_bf16 1 train.steps=4 train.precision=bf16
run one_bf16_m2 1 train.steps=4 train.precision=bf16 parallel.microbatches=2
for layout in "4 parallel.tp=2 parallel.dp=2 parallel.zero_stage=1" "2 parallel.dp=2 parallel.etp=2 parallel.zero_stage=2" \
              "4 parallel.pp=2 parallel.dp=2 parallel.microbatches=2 parallel.zero_stage=2"; do
  read -r np rest <<<"$layout"
  name=$(echo "$rest" | tr ' =' '__')
  run "$name" "$np" train.steps=4 train.precision=bf16 $rest
  ref=one_bf16
  [[ $rest == *microbatches* ]] && ref=one_bf16_m2
  echo -n "bf16 $rest: "
  compare_losses "$WORK/$ref/metrics.jsonl" "$WORK/$name/metrics.jsonl" 5e-5
done
