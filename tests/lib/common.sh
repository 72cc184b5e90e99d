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

# Per-step losses of two runs agree to a relative tolerance.
compare_losses() {
  python3 - "$1" "$2" "${3:-1e-5}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
assert len(a) == len(b) and len(a) > 0, f"{len(a)} vs {len(b)} logged steps"
for x, y in zip(a, b):
    assert x["step"] == y["step"]
    rel = abs(x["loss"] - y["loss"]) / abs(x["loss"])
    assert rel <= tol, f"step {x['step']}: loss {x['loss']} vs {y['loss']} (rel {rel:.2e} > {tol})"
print(f"{len(a)} steps agree within {tol}")
PY
}

# Per-step gradient norms of two runs agree to a relative tolerance (default 1e-4: the norm sums
# shards in a layout-dependent order).
compare_norms() {
  python3 - "$1" "$2" "${3:-1e-4}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
assert len(a) == len(b) and len(a) > 0, f"{len(a)} vs {len(b)} logged steps"
for x, y in zip(a, b):
    rel = abs(x["grad_norm"] - y["grad_norm"]) / x["grad_norm"]
    assert rel <= tol, f"step {x['step']}: grad_norm {x['grad_norm']} vs {y['grad_norm']} (rel {rel:.2e})"
PY
}
