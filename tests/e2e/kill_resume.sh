#!/usr/bin/env bash
# Crash safety: kill -9 a training run at random moments (5 times), resume with
# checkpoint.resume=auto each time, and end with exactly the weights of an uninterrupted run.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=40 --set checkpoint.every=3 --set checkpoint.keep=2 --set train.log_every=5)
t0=$(date +%s%N)
"$MOE_BIN" train "${args[@]}" --set checkpoint.resume=never --run-dir "$WORK/straight"
run_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

# Kill times spread over the length of a whole run (measured above, so a loaded machine still
# sees kills in the middle of training and of checkpoint writes).
RANDOM=7
for i in 1 2 3 4 5; do
  "$MOE_BIN" train "${args[@]}" --run-dir "$WORK/killed" &
  pid=$!
  delay_ms=$(( run_ms / 10 + RANDOM % (run_ms * 7 / 10 + 1) ))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  echo "kill $i after ${delay_ms} ms (a run takes ${run_ms} ms): checkpoints $(ls "$WORK/killed/checkpoints" 2>/dev/null | tr '\n' ' ')"
done
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/killed"

/usr/bin/python3 - "$WORK/straight/checkpoints" "$WORK/killed/checkpoints" <<'PY'
import h5py, numpy as np, os, sys
def final(root):
    steps = sorted(d for d in os.listdir(root) if d.startswith("step_") and "tmp" not in d)
    return h5py.File(os.path.join(root, steps[-1], "rank_00000.h5"), "r"), steps[-1]
(a, sa), (b, sb) = final(sys.argv[1]), final(sys.argv[2])
assert sa == sb == "step_00000040", (sa, sb)
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
assert any(n.startswith("param/") for n in names)
for n in names:
    assert np.array_equal(a[n][()], b[n][()]), f"{n} differs after kill -9 and resume"
print(f"{len(names)} tensors bit-identical after 5 kills")
PY
