# Shared helpers for tests/e2e and tests/dist scripts (sourced). ctest sets MOE_BIN,
# MOE_SOURCE_DIR and MOE_BUILD_DIR.
set -euo pipefail
: "${MOE_BIN:?run through ctest (MOE_BIN unset)}"
: "${MOE_SOURCE_DIR:?run through ctest}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export MOE_THREADS=${MOE_THREADS:-1}
WORK=$(mktemp -d /tmp/moe_test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The default corpus, prepared once per test into $WORK/fortunes.
prepare_fortunes() {
  "$MOE_BIN" data prepare --input /usr/share/games/fortunes --output "$WORK/fortunes" >/dev/null
}

# expect_exit CODE cmd...: runs cmd, checks its exit code, leaves its stderr in $WORK/stderr.
expect_exit() {
  local want=$1; shift
  set +e
  "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || { cat "$WORK/stderr" >&2; fail "exit $got, expected $want: $*"; }
}

# compare_metric A B KEY TOL: per-step KEY of two metrics.jsonl files agrees to a relative tolerance.
compare_metric() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
key, tol = sys.argv[3], float(sys.argv[4])
assert len(a) == len(b) and len(a) > 0, f"{len(a)} vs {len(b)} logged steps"
for x, y in zip(a, b):
    assert x["step"] == y["step"]
    rel = abs(x[key] - y[key]) / abs(x[key])
    assert rel <= tol, f"step {x['step']}: {key} {x[key]} vs {y[key]} (rel {rel:.2e} > {tol})"
print(f"{len(a)} steps agree within {tol}" + ("" if key == "loss" else f" ({key})"))
PY
}

# Per-step losses of two runs agree to a relative tolerance.
compare_losses() { compare_metric "$1" "$2" loss "${3:-1e-5}"; }

# Per-step gradient norms agree (default 1e-4: the norm sums shards in a layout-dependent order).
compare_norms() { compare_metric "$1" "$2" grad_norm "${3:-1e-4}"; }
