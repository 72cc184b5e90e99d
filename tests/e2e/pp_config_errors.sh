#!/usr/bin/env bash
# Bad pipeline and micro-batch settings exit with code 2 and name the key, before any work.
source "$(dirname "$0")/../lib/common.sh"
tiny="$MOE_SOURCE_DIR/configs/tiny.yaml"
check() {  # check "expected text" args...
  local want=$1; shift
  expect_exit 2 "$MOE_BIN" train --config "$tiny" --quiet --run-dir "$WORK/run" "$@"
  grep -q -- "$want" "$WORK/stderr" || { cat "$WORK/stderr"; fail "message lacks '$want'"; }
}
# tiny.yaml: 2 blocks, batch 16.
check "model.n_layers: 2 is not divisible by parallel.pp = 3" --set parallel.pp=3
check "parallel.pp_layout: counts 3 blocks but model.n_layers = 2" --set parallel.pp=2 --set "parallel.pp_layout=[1, 2]"
check "parallel.pp_layout: lists 1 stages but parallel.pp = 2" --set parallel.pp=2 --set "parallel.pp_layout=[2]"
check "parallel.pp_layout: 0 is out of range" --set parallel.pp=2 --set "parallel.pp_layout=[0, 2]"
check "parallel.pp_layout: got" --set parallel.pp=2 --set parallel.pp_layout=2
check "train.batch_size: 16 is not divisible by parallel.dp \* parallel.microbatches = 1 \* 3" \
  --set parallel.microbatches=3

check "parallel.virtual_stages: 2 needs pipeline stages" --set parallel.virtual_stages=2
check "parallel.virtual_stages: 2 needs parallel.schedule 1f1b" --set parallel.pp=2 --set parallel.virtual_stages=2 \
  --set parallel.schedule=gpipe --set model.n_layers=4
check "parallel.microbatches: 3 is not a multiple of parallel.pp = 2" --set parallel.pp=2 \
  --set parallel.virtual_stages=2 --set parallel.microbatches=3 --set model.n_layers=4 --set train.batch_size=12
check "model.n_layers: 2 is not divisible by parallel.pp \* parallel.virtual_stages = 4" --set parallel.pp=2 \
  --set parallel.virtual_stages=2 --set parallel.microbatches=2
# A valid pipeline layout on the wrong number of processes names the world size.
check "parallel.dp \* parallel.tp \* parallel.pp: 1 \* 1 \* 2 = 2 but the world has 1" --set parallel.pp=2
echo "pipeline config errors: ok"
