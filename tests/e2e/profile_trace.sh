#!/usr/bin/env bash
# profile.trace / profile.trace_steps: the Chrome trace JSON of a tiny run (complete events of
# the phases on a compute and a communication lane, only the chosen steps), bad trace_steps is a
# config error, and `moe profile RUN_A --compare RUN_B` (text and --json).
source "$(dirname "$0")/../lib/common.sh"
PY=/usr/bin/python3
prepare_fortunes
train() {
  "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes" \
    --set train.steps=5 --set train.log_every=1 --set checkpoint.every=0 --set checkpoint.resume=never "$@" >/dev/null
}
train --run-dir "$WORK/a" --set profile.trace=trace.json --set profile.trace_steps=2-3
[ -f "$WORK/a/trace.rank0.json" ] || fail "no RUN_DIR/trace.rank0.json"
$PY - "$WORK/a/trace.rank0.json" <<'PYEOF' || fail "trace contents"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
x = [e for e in events if e["ph"] == "X"]
assert {e["args"]["step"] for e in x} == {2, 3}, "only steps 2-3"
assert all(e["pid"] == 0 and e["dur"] >= 0 and e["ts"] > 0 for e in x)
names = {e["name"] for e in x}
for n in ["step", "attention", "route", "dispatch", "experts", "combine", "optimizer"]:
    assert n in names, f"no {n} event: {sorted(names)}"
assert {e["tid"] for e in x if e["name"] != "comm_wait"} == {0}
steps = [e for e in x if e["name"] == "step"]
assert len(steps) == 2
for s in steps:  # every phase of a step lies inside it
    inside = [e for e in x if e["args"]["step"] == s["args"]["step"] and e is not s]
    assert all(s["ts"] <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 1e-3 for e in inside)
meta = {(e["name"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M"}
assert meta[("thread_name", 0)] == "compute" and meta[("thread_name", 1)] == "communication"
print(f"{len(x)} complete events")
PYEOF

expect_exit 2 "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --run-dir "$WORK/bad" \
  --set data.path="$WORK/fortunes" --set profile.trace_steps=7-5
grep -q "profile.trace_steps" "$WORK/stderr" || fail "the error does not name profile.trace_steps"

train --run-dir "$WORK/b" --set moe.aux_loss_coeff=0.1
"$MOE_BIN" profile "$WORK/a" --compare "$WORK/b" >"$WORK/cmp.txt" || fail "--compare exited $?"
for part in "A: $WORK/a" "B: $WORK/b" "loss last" "layer 0" "layer 1" "max/mean" "drop %" "entropy"; do
  grep -qF -- "$part" "$WORK/cmp.txt" || { cat "$WORK/cmp.txt"; fail "compare lacks '$part'"; }
done
"$MOE_BIN" profile "$WORK/a" --compare "$WORK/b" --json | $PY -c '
import json, sys
d = json.load(sys.stdin)
assert len(d["runs"]) == 2 and d["profiling"] == [True, True]
assert [l["layer"] for l in d["layers"]] == [0, 1]
for l in d["layers"]:
    assert all(v is not None and v >= 1.0 for v in l["max_over_mean"]), l
' || fail "--compare --json"
expect_exit 3 "$MOE_BIN" profile "$WORK/a" --compare "$WORK/nope"
echo "e2e profile trace and compare: ok"
