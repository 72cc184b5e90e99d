#!/usr/bin/env bash
# No silent hang: when rank 1 stalls before step 2, the other rank's next collective times out
# after parallel.timeout_s and the job exits non-zero with a message naming rank, group and op.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
set +e
MOE_TEST_STALL_RANK=1 MOE_TEST_STALL_STEP=2 MOE_TEST_STALL_SECONDS=120 timeout 100 \
  mpirun --oversubscribe -np 2 "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet \
  --set data.path="$WORK/fortunes" --set train.steps=4 --set checkpoint.resume=never --set train.batch_size=8 \
  --set parallel.dp=2 --set parallel.ep=2 --set parallel.timeout_s=3 --run-dir "$WORK/run" >"$WORK/out" 2>&1
rc=$?
set -e
cat "$WORK/out"
[ "$rc" -ne 0 ] || fail "the stalled job exited 0"
[ "$rc" -ne 124 ] || fail "the stalled job hung until the test's own timeout"
grep -Eq "rank 0: [a-z_]+ on group [a-z]+ did not complete within 3 s" "$WORK/out" || fail "no watchdog message"
