#!/usr/bin/env bash
# `moe profile` on a real run: train configs/tiny.yaml for 20 steps, resume to 30, then check the
# text report's sections, --json, --html, the load_balance.h5 schema (docs/profile-format.md) with
# h5py, and the exit code 3 for a missing or damaged run.
set -euo pipefail
: "${MOE_BIN:?set by ctest}" "${MOE_SOURCE_DIR:?set by ctest}"
PY=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

$PY - "$tmp/corpus.txt" <<'PYEOF'
import random, sys
random.seed(7)
words = "the expert router sends each token to two of four experts while the load stays even".split()
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        f.write(" ".join(random.choice(words) for _ in range(random.randint(5, 14))) + ".\n")
PYEOF
"$MOE_BIN" data prepare --input "$tmp/corpus.txt" --output "$tmp/data" >/dev/null

train() {
  "$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --run-dir "$tmp/run" --quiet \
    --set data.path="$tmp/data" --set train.log_every=5 --set checkpoint.every=10 "$@"
}
train --set train.steps=20 --set checkpoint.resume=never
train --set train.steps=30 --set checkpoint.resume=auto   # resumes at step 20: no duplicate rows

"$MOE_BIN" profile "$tmp/run" >"$tmp/report.txt" || fail "moe profile exited $?"
for part in "loss      first" "load balance: 30 steps recorded" "layer 0" "layer 1" "max/mean" "hottest expert" \
            "coldest expert" "trend:" "e0   |" "e3   |" "phases"; do
  grep -qF -- "$part" "$tmp/report.txt" || { cat "$tmp/report.txt"; fail "report lacks '$part'"; }
done

"$MOE_BIN" profile "$tmp/run" --json | $PY -c '
import json, sys
d = json.load(sys.stdin)
assert d["profiling"] is True, d
lb = d["load_balance"]
assert lb["rows"] == 30 and lb["num_experts"] == 4, lb
assert [l["layer"] for l in lb["layers"]] == [0, 1], lb["layers"]
for l in lb["layers"]:
    assert l["max_over_mean"] >= 1.0 and abs(sum(l["shares"]) - 1.0) < 1e-9, l
assert d["loss"]["last_step"] == 30, d["loss"]
' || fail "--json output"

"$MOE_BIN" profile "$tmp/run" --html "$tmp/report.html" >/dev/null || fail "--html exited $?"
grep -q "<svg" "$tmp/report.html" || fail "--html wrote no <svg>"

$PY - "$tmp/run/load_balance.h5" <<'PYEOF' || fail "load_balance.h5 schema"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
S, L, E = 30, 2, 4
assert list(f["step"][:]) == list(range(1, S + 1)), f["step"][:]
shapes = {"tokens_per_expert": (S, L, E), "bias": (S, L, E), "dropped": (S, L), "entropy": (S, L),
          "aux_loss": (S, L), "z_loss": (S, L), "max_over_mean": (S, L), "cv": (S, L), "phase_seconds": (S, 8)}
for name, shape in shapes.items():
    assert f[name].shape == shape, (name, f[name].shape)
assert f["tokens_per_expert"].dtype == np.int64 and f["bias"].dtype == np.float32
# tiny.yaml: 16 sequences x 64 tokens x top-2 assignments per step and layer
assert (f["tokens_per_expert"][:].sum(axis=2) == 16 * 64 * 2).all()
assert list(f.attrs["moe_layers"]) == [0, 1] and f.attrs["num_experts"] == 4
assert f.attrs["every"] == 1 and f.attrs["version"] == 1
assert [str(p) for p in f["phase_seconds"].attrs["phases"]][-1] == "step"
assert "a2a_bytes" not in f  # ep == 1
PYEOF

set +e
"$MOE_BIN" profile "$tmp/no-such-run" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 3 ] || fail "missing run dir: exit $rc, expected 3"
grep -q "no-such-run" "$tmp/err.txt" || fail "error does not name the run dir"
echo "garbage" >"$tmp/run/load_balance.h5"
"$MOE_BIN" profile "$tmp/run" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 3 ] || fail "damaged load_balance.h5: exit $rc, expected 3"
grep -q "load_balance.h5" "$tmp/err.txt" || fail "error does not name load_balance.h5"
echo "e2e profile: ok"
