#!/usr/bin/env bash
# The README's fine-tuning walk-through, shortened: pretrain tiny on one process, fine-tune on a
# second corpus with configs/finetune_example.yaml under dp=2, ep=2 (another layout), then
# generate: seeded sampling repeats exactly, greedy decoding is deterministic too.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
"$MOE_BIN" data prepare --input /usr/share/games/fortunes/science --output "$WORK/tech" >/dev/null
"$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" \
  --set train.steps=4 --set train.batch_size=4 --run-dir "$WORK/pre"
mpirun --oversubscribe -np 2 "$MOE_BIN" finetune --config "$MOE_SOURCE_DIR/configs/finetune_example.yaml" \
  --from "$WORK/pre" --run-dir "$WORK/ft" --set data.path="$WORK/tech" --set train.steps=3 \
  --set train.batch_size=4 --set train.log_every=1 >"$WORK/ft.log"
grep -q "initialised from" "$WORK/ft.log" || { cat "$WORK/ft.log"; fail "finetune did not start from the checkpoint"; }
[ "$(wc -l <"$WORK/ft/metrics.jsonl")" -eq 3 ] || fail "expected 3 fine-tuning steps in metrics.jsonl"
grep -q '"ep": *2' "$WORK/ft/checkpoints/step_00000003/manifest.json" || fail "the fine-tune did not run with ep=2"

gen=(--from "$WORK/ft" --prompt "The " --max-tokens 20 --json)
"$MOE_BIN" generate "${gen[@]}" --temperature 0.9 --top-p 0.9 --seed 5 >"$WORK/g1.json"
"$MOE_BIN" generate "${gen[@]}" --temperature 0.9 --top-p 0.9 --seed 5 >"$WORK/g2.json"
cmp "$WORK/g1.json" "$WORK/g2.json" || fail "sampling with the same seed differs"
"$MOE_BIN" generate "${gen[@]}" --temperature 0 >"$WORK/greedy1.json"
"$MOE_BIN" generate "${gen[@]}" --temperature 0 --seed 99 >"$WORK/greedy2.json"
cmp "$WORK/greedy1.json" "$WORK/greedy2.json" || fail "greedy decoding depends on the seed"
python3 - "$WORK/g1.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
assert g["prompt"] == "The " and 0 < len(g["tokens"]) <= 20, g
PY
# The tokenizer comes from the config's data.path; a missing dataset is a data error.
expect_exit 3 "$MOE_BIN" generate "${gen[@]}" --set data.path="$WORK/nowhere"
