#!/usr/bin/env bash
# A rank that dies: kill -9 rank 2 of 4 in the middle of training. The job must end on its own,
# well within parallel.timeout_s plus a margin, with a non-zero exit and a message that names the
# lost rank (Open MPI's "process rank 2 ... exited on signal 9", or our watchdog's).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
timeout_s=10
run="$WORK/run"
trap 'pkill -9 -f -- "--run-dir $run" || true; rm -rf "$WORK"' EXIT
mpirun --oversubscribe -np 4 "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet \
  --set data.path="$WORK/fortunes" --set train.steps=100000 --set checkpoint.every=0 --set train.log_every=1 \
  --set parallel.dp=4 --set parallel.timeout_s=$timeout_s --run-dir "$run" >"$WORK/out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$run/metrics.jsonl" ] && [ "$(wc -l < "$run/metrics.jsonl")" -ge 3 ] && break
  sleep 0.05
done
[ -f "$run/metrics.jsonl" ] || { cat "$WORK/out"; fail "training did not start"; }
victim=""
for p in $(pgrep -f -- "--run-dir $run"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=2"; then victim=$p; fi
done
[ -n "$victim" ] || fail "rank 2 not found"
t0=$(date +%s%N)
kill -9 "$victim"
# The job must end by itself; the test gives up (and fails) at timeout + 20 s.
deadline=$(( timeout_s + 20 ))
while kill -0 $pid 2>/dev/null; do
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt $deadline ] || { cat "$WORK/out"; fail "the job hangs after rank 2 died"; }
  sleep 0.1
done
set +e; wait $pid; rc=$?; set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cat "$WORK/out"
[ "$rc" -ne 0 ] || fail "the job exited 0 after losing rank 2"
grep -Eq "rank 2\b.*(exited on signal 9|Killed)|process rank 2|lost rank 2" "$WORK/out" || fail "no message names rank 2"
left=$( (pgrep -f -- "--run-dir $run" || true) | wc -l)
[ "$left" -eq 0 ] || fail "$left rank processes outlive the job"
echo "rank 2 killed: the job ended after ${ms} ms with exit $rc (parallel.timeout_s=$timeout_s)"
