#!/usr/bin/env bash
# Multi-rank EP dispatcher: dispatch then combine returns the input, and the backward its
# gradient, on 2 and 4 ranks with uneven loads and experts that receive no tokens.
source "$(dirname "$0")/../lib/common.sh"
bin="${MOE_BUILD_DIR:?}/tests/bench_alltoall"
[ -x "$bin" ] || fail "$bin is missing: build with MOE_BUILD_BENCH=ON (the default)"
for n in 2 4; do
  mpirun --oversubscribe -np $n "$bin" --check
done
