#!/usr/bin/env bash
# `moe plan`: Mixtral 8x7B on 64 H100s prints a ranked table and valid JSON; bad flags exit 2.
source "$(dirname "$0")/../lib/common.sh"
cfg="$MOE_SOURCE_DIR/configs/models/mixtral_8x7b.yaml"
hw="$MOE_SOURCE_DIR/configs/hardware/h100_node.yaml"
expect_exit 0 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$hw"
grep -q "layouts considered" "$WORK/stdout" || fail "no summary line"
grep -Eq '^ +1  dp[0-9]+ tp[0-9]+ pp[0-9]+ ep[0-9]+' "$WORK/stdout" || { cat "$WORK/stdout"; fail "no ranked layout"; }
grep -q "do not fit" "$WORK/stdout" || fail "no layouts that do not fit"
expect_exit 0 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$hw" --json --top 3 --imbalance 1.3
/usr/bin/python3 - "$WORK/stdout" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["world"] == 64 and len(j["fitting"]) == 3, j.keys()
times = [e["step_s"]["total"] for e in j["fitting"]]
assert times == sorted(times), times
assert abs(j["total_params"] / 46.7e9 - 1) < 0.01
assert all(e["memory_bytes"]["total"] <= j["memory_capacity_bytes"] for e in j["fitting"])
print("plan json: ok")
PY
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --world 0 --hardware "$hw"
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$WORK/missing.yaml"
grep -q "missing.yaml" "$WORK/stderr" || fail "message does not name the hardware file"
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$hw" --imbalance 0.5
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$hw" --no-such-flag
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --world 7 --hardware "$hw"
grep -q "world 7" "$WORK/stderr" || fail "message does not name --world"
expect_exit 2 "$MOE_BIN" plan --config "$cfg" --set model.d_modle=1 --hardware "$hw"
expect_exit 3 "$MOE_BIN" plan --config "$cfg" --world 64 --hardware "$hw" --profile "$WORK/no_run"
echo "plan cli: ok"
