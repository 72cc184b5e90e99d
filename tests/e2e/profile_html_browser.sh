#!/usr/bin/env bash
# The HTML report of `moe profile` in headless Chromium: it loads with no console error, the DOM
# holds the expected charts (an <svg> per chart, E x buckets heatmap cells per layer), and a
# screenshot is taken. Also: a truncated load_balance.h5 is a data error (exit 3).
source "$(dirname "$0")/../lib/common.sh"
PY=/usr/bin/python3
command -v chromium >/dev/null || fail "chromium is not installed: run scripts/install_deps.sh"

prepare_fortunes
"$MOE_BIN" train --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --run-dir "$WORK/run" --quiet \
  --set data.path="$WORK/fortunes" --set train.steps=40 --set train.log_every=2 --set checkpoint.every=0 \
  --set checkpoint.resume=never >/dev/null
"$MOE_BIN" profile "$WORK/run" --html "$WORK/report.html" >/dev/null || fail "--html exited $?"

# Chromium wants a writable home and its own profile folder; --v=0 with logging to stderr prints
# the page's console messages ("Uncaught ..." or ERROR:CONSOLE lines).
export HOME="$WORK/home"
mkdir -p "$HOME"
browser() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/chrome" \
    --enable-logging=stderr --v=0 "$@" "file://$WORK/report.html"
}
browser --dump-dom >"$WORK/dom.html" 2>"$WORK/console.txt" || { cat "$WORK/console.txt" >&2; fail "chromium --dump-dom"; }
if grep -E "Uncaught|ERROR:CONSOLE" "$WORK/console.txt"; then fail "console errors while loading the report"; fi
browser --screenshot="$WORK/report.png" --window-size=1000,2400 >/dev/null 2>"$WORK/shot.txt" ||
  { cat "$WORK/shot.txt" >&2; fail "chromium --screenshot"; }
[ -s "$WORK/report.png" ] || fail "no screenshot written"
head -c 8 "$WORK/report.png" | od -An -c | grep -q "P   N   G" || fail "the screenshot is not a PNG"

$PY - "$WORK/dom.html" <<'PYEOF' || fail "charts in the rendered DOM"
import re, sys
dom = open(sys.argv[1]).read()
svgs = dom.count("<svg")
# loss, one heatmap per MoE layer (2), max/mean, drops, phases: 6 charts
assert svgs == 6, f"{svgs} <svg> elements, expected 6"
# heatmap cells carry a <title> "expert E, steps up to S: ..."; 40 recorded steps, 4 experts, 2 layers
cells = len(re.findall(r"<title>expert \d+, steps up to \d+:", dom))
assert cells == 2 * 4 * 40, f"{cells} heatmap cells, expected 320"
# every line is drawn whole: the loss (20 logged steps), then max/mean and drop % of 2 layers
lines = [len(p.split()) for p in re.findall(r'<polyline[^>]*points="([^"]*)"', dom)]
assert lines == [20, 40, 40, 40, 40], f"points per polyline: {lines}"
assert dom.count(">layer 0<") == 2 and dom.count(">layer 1<") == 2, "legend of the per-layer charts"
assert "Capacity factor that would have dropped" in dom
for phase in ["attention", "route", "dispatch", "experts", "combine", "optimizer"]:
    assert f">{phase}<" in dom, f"phase bar {phase} missing"
print(f"{svgs} charts, {cells} heatmap cells")
PYEOF

# A profile cut short (a copy that lost its tail) is a data error naming the file.
size=$(stat -c %s "$WORK/run/load_balance.h5")
head -c $((size / 2)) "$WORK/run/load_balance.h5" >"$WORK/cut.h5"
mv "$WORK/cut.h5" "$WORK/run/load_balance.h5"
expect_exit 3 "$MOE_BIN" profile "$WORK/run"
grep -q "load_balance.h5" "$WORK/stderr" || fail "the error does not name load_balance.h5"
echo "e2e profile html in chromium: ok"
