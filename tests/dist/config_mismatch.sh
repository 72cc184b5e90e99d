#!/usr/bin/env bash
# A --set given to one rank only is a config error (exit 2) naming the differing rank and key.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" --set train.steps=2
      --set checkpoint.resume=never --set train.batch_size=8 --set parallel.dp=2 --run-dir "$WORK/run")
expect_exit 2 mpirun --oversubscribe -np 1 "$MOE_BIN" train "${args[@]}" : \
  -np 1 "$MOE_BIN" train "${args[@]}" --set optim.lr=0.01
grep -q "rank 1" "$WORK/stderr" || { cat "$WORK/stderr"; fail "the message does not name rank 1"; }
grep -q "lr" "$WORK/stderr" || { cat "$WORK/stderr"; fail "the message does not name the differing key"; }
