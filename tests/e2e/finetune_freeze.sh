#!/usr/bin/env bash
# moe finetune from the CLI: frozen groups are bit-identical in the fine-tuned checkpoint and have
# no optimizer state, the rest changed; --keep-optimizer carries AdamW's step; bad freeze names
# (exit 2) and another model shape (exit 3) are refused.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.batch_size=4 --set checkpoint.resume=auto)
"$MOE_BIN" train "${args[@]}" --set train.steps=4 --run-dir "$WORK/pre"
"$MOE_BIN" finetune "${args[@]}" --set train.steps=3 --from "$WORK/pre" --run-dir "$WORK/ft" \
  --set 'finetune.freeze=[attention,norms,router]' --set moe.aux_loss_coeff=0.05
/usr/bin/python3 - "$WORK/pre/checkpoints/step_00000004" "$WORK/ft/checkpoints/step_00000003" <<'PY'
import h5py, json, sys, numpy as np
pre, ft = (h5py.File(d + "/rank_00000.h5", "r") for d in sys.argv[1:3])
frozen = lambda n: ".attention." in n or n.endswith("norm.weight") or ".moe.router." in n
for name in pre["param"]:
    same = np.array_equal(pre["param"][name][()], ft["param"][name][()])
    assert same == frozen(name), f"{name}: frozen={frozen(name)} but unchanged={same}"
    assert (name in ft["adam_m"]) == (not frozen(name) and not name.endswith("router.bias")), name
meta = json.load(open(sys.argv[2] + "/manifest.json"))["meta"]
assert meta["optimizer_step"] == 3, meta["optimizer_step"]
PY
"$MOE_BIN" finetune "${args[@]}" --set train.steps=2 --from "$WORK/pre" --run-dir "$WORK/keep" --keep-optimizer
grep -q '"optimizer_step": *6' "$WORK/keep/checkpoints/step_00000002/manifest.json" || fail "AdamW step not kept"

expect_exit 2 "$MOE_BIN" finetune "${args[@]}" --from "$WORK/pre" --run-dir "$WORK/bad" --set 'finetune.freeze=[atention]'
grep -q "finetune.freeze" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no message naming finetune.freeze"; }
expect_exit 3 "$MOE_BIN" finetune "${args[@]}" --from "$WORK/pre" --run-dir "$WORK/bad" --set moe.expert_hidden=64
grep -q "layers.0.moe.experts.w1" "$WORK/stderr" && grep -q "rank_00000.h5" "$WORK/stderr" ||
  { cat "$WORK/stderr"; fail "the shape error does not name the tensor and the file"; }
