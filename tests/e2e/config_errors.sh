#!/usr/bin/env bash
# Malformed configs and command lines exit with code 2 and name the key (and the file).
source "$(dirname "$0")/../lib/common.sh"
tiny="$MOE_SOURCE_DIR/configs/tiny.yaml"
check() {  # check "expected text" args...
  local want=$1; shift
  expect_exit 2 "$MOE_BIN" train --config "$@"
  grep -q -- "$want" "$WORK/stderr" || { cat "$WORK/stderr"; fail "message lacks '$want'"; }
}
check "model.d_model" "$tiny" --set model.d_modle=64
check "did you mean" "$tiny" --set model.d_modle=64
check "model.n_heads" "$tiny" --set model.n_heads=3
check "moe.top_k" "$tiny" --set moe.top_k=9
check "optim.lr" "$tiny" --set optim.lr=abc
check "moe.drop_policy" "$tiny" --set moe.drop_policy=random
check "parallel.dp" "$tiny" --set parallel.dp=2
printf 'model:\n  d_model: 64\nbogus:\n  x: 1\n' > "$WORK/bad.yaml"
check "bad.yaml" "$WORK/bad.yaml"
printf 'model: [1, 2\n' > "$WORK/syntax.yaml"
check "syntax.yaml" "$WORK/syntax.yaml"
check "missing.yaml" "$WORK/missing.yaml"
expect_exit 2 "$MOE_BIN" train
expect_exit 2 "$MOE_BIN" no-such-command
echo "config errors: ok"
