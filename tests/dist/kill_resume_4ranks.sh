#!/usr/bin/env bash
# Crash safety with 4 ranks: SIGKILL the whole mpirun job at random moments (5 times per layout,
# parallel.dp=4 and dp=4 ep=2), resume with checkpoint.resume=auto each time, and end with exactly
# the tensors of an uninterrupted run in every rank's checkpoint file. No rank may outlive mpirun:
# survivors are counted (reported), killed, and never allowed to write into the next attempt.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
RANDOM=13
kills=0 orphans=0

# Ranks whose command line names this run directory (mpirun itself included until it is gone).
run_procs() { pgrep -f -- "--run-dir $1" || true; }
reap() {
  local run=$1 left
  for _ in $(seq 1 50); do
    left=$(run_procs "$run")
    [ -z "$left" ] && return 0
    orphans=$((orphans + $(echo "$left" | wc -l)))
    pkill -9 -f -- "--run-dir $run" || true
    sleep 0.1
  done
  fail "processes of $run survive SIGKILL: $(run_procs "$run")"
}
trap 'pkill -9 -f -- "--run-dir $WORK/" || true; rm -rf "$WORK"' EXIT

layout() {
  local name=$1; shift
  local args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
              --set train.steps=24 --set checkpoint.every=2 --set checkpoint.keep=2 --set train.log_every=4
              --set parallel.timeout_s=20 "$@")
  local t0 run_ms pid delay_ms
  t0=$(date +%s%N)
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never \
    --run-dir "$WORK/$name/straight"
  run_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  for i in 1 2 3 4 5; do
    # setsid: mpirun leads its own group, so only it gets the SIGKILL (the ranks must cope alone).
    setsid mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --run-dir "$WORK/$name/killed" \
      >"$WORK/$name.out" 2>&1 &
    pid=$!
    delay_ms=$(( run_ms / 5 + RANDOM % (run_ms * 3 / 5 + 1) ))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    reap "$WORK/$name/killed"
    kills=$((kills + 1))
    echo "$name kill $i after ${delay_ms} ms (a run takes ${run_ms} ms): checkpoints" \
         "$(ls "$WORK/$name/killed/checkpoints" 2>/dev/null | tr '\n' ' ')"
  done
  mpirun --oversubscribe -np 4 "$MOE_BIN" train "${args[@]}" --run-dir "$WORK/$name/killed"
  /usr/bin/python3 - "$WORK/$name/straight/checkpoints" "$WORK/$name/killed/checkpoints" <<'PY'
import h5py, numpy as np, os, sys
def final(root):
    steps = sorted(d for d in os.listdir(root) if d.startswith("step_") and "tmp" not in d)
    return os.path.join(root, steps[-1]), steps[-1]
(a, sa), (b, sb) = final(sys.argv[1]), final(sys.argv[2])
assert sa == sb == "step_00000024", (sa, sb)
files = sorted(f for f in os.listdir(a) if f.endswith(".h5"))
assert files == sorted(f for f in os.listdir(b) if f.endswith(".h5")), "different rank files"
assert len(files) == 4, files
count = 0
for f in files:
    x, y = h5py.File(os.path.join(a, f), "r"), h5py.File(os.path.join(b, f), "r")
    names = []
    x.visit(lambda n: names.append(n) if isinstance(x[n], h5py.Dataset) else None)
    other = []
    y.visit(lambda n: other.append(n) if isinstance(y[n], h5py.Dataset) else None)
    assert names == other, f"{f}: different tensors"
    # Replicated tensors are stored by rank 0 only; other ranks hold their shards and loader state.
    assert f != "rank_00000.h5" or any(n.startswith("param/") for n in names), f
    for n in names:
        assert np.array_equal(x[n][()], y[n][()]), f"{f}:{n} differs after kill -9 and resume"
    count += len(names)
print(f"{count} tensors in {len(files)} rank files bit-identical")
PY
}

layout dp4 --set parallel.dp=4
layout dp4_ep2 --set parallel.dp=4 --set parallel.ep=2
echo "$kills kills of mpirun survived; $orphans orphaned rank processes found and killed"
