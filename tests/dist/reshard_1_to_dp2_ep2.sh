#!/usr/bin/env bash
# Resharding: 3 steps on one process, then the checkpoint resumes under dp=4, ep=2 (edp 2 x ep 2):
# parameters, AdamW moments (sliced like their experts) and loader state carry over, so the 6
# steps match an uninterrupted single-process run (1e-5), and the new checkpoint records its slices.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=6 --set train.log_every=1 --set train.batch_size=8 --set checkpoint.every=0
      --set profile.load_balance=false)  # the profile file keeps one ep layout (its own rule)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=auto --run-dir "$WORK/split" --exit-after 3
mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set parallel.dp=4 --set parallel.ep=2 \
  --set checkpoint.resume=auto --run-dir "$WORK/split" >"$WORK/resume.log"
grep -q "resumed from .*step_00000003 at step 3" "$WORK/resume.log" || { cat "$WORK/resume.log"; fail "did not resume"; }
compare_losses "$WORK/straight/metrics.jsonl" "$WORK/split/metrics.jsonl" 1e-5
python3 - "$WORK/split/checkpoints/step_00000006/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = m["layout"]["tensor_slices"]["layers.0.moe.experts.w1"]
assert s["global_shape"][0] == 4, s
assert [p["rank"] for p in s["pieces"]] == [0, 1] and [p["start"][0] for p in s["pieces"]] == [0, 2], s
assert "layers.0.moe.router.weight" not in m["layout"]["tensor_slices"], "replicated tensors are whole"
PY
