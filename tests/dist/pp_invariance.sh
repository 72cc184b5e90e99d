#!/usr/bin/env bash
# Layout invariance for pipeline parallelism: pp 2 and pp 4 under gpipe and 1f1b match the single
# process with the same micro-batches to 1e-5 (MoE statistics are per micro-batch, so the
# reference is pp 1 with the same parallel.microbatches). The model has 4 blocks, MoE in blocks 1
# and 3, so under pp 4 stages 0 and 2 have no MoE layer. Also checks the activation slots per
# stage (1f1b: min(m, pp - stage); gpipe: m), that the bubble metrics are there, and periodic eval.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=5 --set train.log_every=1 --set checkpoint.resume=never --set checkpoint.every=0
      --set train.batch_size=8 --set model.seq_len=32 --set model.d_model=32 --set model.n_layers=4
      --set model.moe_every=2 --set model.ffn_hidden=64 --set moe.expert_hidden=64)

"$MOE_BIN" train "${args[@]}" --set parallel.microbatches=2 --set train.eval_every=5 --run-dir "$WORK/m2"
"$MOE_BIN" train "${args[@]}" --set parallel.microbatches=4 --run-dir "$WORK/m4"

# run NAME RANKS M EXTRA...: compares against the pp 1 run with M micro-batches.
run() {
  local name=$1 n=$2 m=$3; shift 3
  mpirun --oversubscribe -np "$n" "$MOE_BIN" train "${args[@]}" --set parallel.microbatches="$m" "$@" \
    --run-dir "$WORK/$name"
  echo -n "$name: "
  compare_losses "$WORK/m$m/metrics.jsonl" "$WORK/$name/metrics.jsonl" 1e-5
}

# slots FILE EXPECTED: activation_slots_stage of the last logged step, and the bubble metrics.
slots() {
  python3 - "$1" "$2" <<'PY'
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1])][-1]
want = json.loads(sys.argv[2])
assert rec["activation_slots_stage"] == want, f'slots {rec["activation_slots_stage"]} != {want}'
per = rec["mem_activations_stage"]
assert rec["mem_activations"] == max(per), rec
assert 0.0 <= rec["bubble_frac"] <= 1.0, rec["bubble_frac"]
print(f'slots {want}, activations {per}, bubble {rec["bubble_frac"]:.3f} (theory {rec["bubble_frac_theory"]:.3f})')
PY
}

run pp2_gpipe 2 2 --set parallel.pp=2 --set parallel.schedule=gpipe --set train.eval_every=5
# Periodic eval under pp (every stage evaluates the whole model after gathering the owners' tensors).
python3 - "$WORK/m2/metrics.jsonl" "$WORK/pp2_gpipe/metrics.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(f)][-1]["eval_loss"] for f in sys.argv[1:])
assert abs(a - b) <= 1e-5 * a, f"eval_loss {a} vs {b}"
print(f"eval_loss {a:.6f} vs {b:.6f}")
PY
slots "$WORK/pp2_gpipe/metrics.jsonl" "[2, 2]"
run pp2_1f1b 2 4 --set parallel.pp=2 --set parallel.schedule=1f1b
slots "$WORK/pp2_1f1b/metrics.jsonl" "[2, 1]"
run pp4_gpipe 4 4 --set parallel.pp=4 --set parallel.schedule=gpipe
slots "$WORK/pp4_gpipe/metrics.jsonl" "[4, 4, 4, 4]"
run pp4_1f1b 4 4 --set parallel.pp=4 --set parallel.schedule=1f1b
slots "$WORK/pp4_1f1b/metrics.jsonl" "[4, 3, 2, 1]"
# An explicit, uneven stage layout (stage 0: block 0 only, no MoE layer).
run pp2_layout 2 2 --set parallel.pp=2 --set "parallel.pp_layout=[1, 3]"
# Interleaved 1F1B: 2 ranks x 2 model chunks (rank 0 holds blocks 0 and 2, rank 1 blocks 1 and 3),
# with m = pp (all warm-up) and m = 2 pp.
run pp2_v2_m2 2 2 --set parallel.pp=2 --set parallel.virtual_stages=2
run pp2_v2_m4 2 4 --set parallel.pp=2 --set parallel.virtual_stages=2
