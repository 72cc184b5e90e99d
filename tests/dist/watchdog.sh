#!/usr/bin/env bash
# No silent hang: when a rank stalls before step 2, the others' next collective times out after
# parallel.timeout_s and the job exits non-zero with a message naming rank, group and op, and the
# peer survey (src/comm/peer_status.h) names the stalled rank.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes

# run_stalled NP OUT [ENV=VALUE...]: a dp=NP ep=2 run with the stall hooks in the environment.
run_stalled() {
  local np=$1 out=$2
  shift 2
  set +e
  env "$@" timeout 100 mpirun --oversubscribe -np "$np" "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" \
    --quiet --set data.path="$WORK/fortunes" --set train.steps=4 --set checkpoint.resume=never \
    --set train.batch_size=8 --set parallel.dp="$np" --set parallel.ep=2 --set parallel.timeout_s=3 \
    --run-dir "$WORK/run$np" >"$out" 2>&1
  local rc=$?
  set -e
  cat "$out"
  [ "$rc" -ne 0 ] || fail "the stalled job exited 0"
  [ "$rc" -ne 124 ] || fail "the stalled job hung until the test's own timeout"
  grep -Eq "rank [0-9]: [a-z_]+ on group [a-z]+ did not complete within 3 s" "$out" || fail "no watchdog message"
}

# Rank 1 of 2 sleeps: it is alive, outside any collective, and named as stalled.
run_stalled 2 "$WORK/out" MOE_TEST_STALL_RANK=1 MOE_TEST_STALL_STEP=2 MOE_TEST_STALL_SECONDS=120
grep -Eq "rank 0: [a-z_]+ on group [a-z]+ did not complete within 3 s" "$WORK/out" || fail "rank 0 did not report"
grep -Eq "stalled: rank 1 is outside any collective" "$WORK/out" || fail "the stalled rank is not named"

# Rank 2 of 4 frozen whole (SIGSTOP: its watchdog cannot answer either): the others name it as
# silent, and the job still ends (MPI_Abort kills the stopped process).
run_stalled 4 "$WORK/out4" MOE_TEST_STALL_RANK=2 MOE_TEST_STALL_STEP=2 MOE_TEST_STALL_MODE=freeze
grep -Eq "\(dead or frozen\): rank 2" "$WORK/out4" || fail "the frozen rank 2 is not named"
