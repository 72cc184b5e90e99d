#!/usr/bin/env bash
# Pipeline bubble: measured bubble_frac (time stages wait on send/recv / schedule time, mean over
# stages) against (pp - 1) / (m + pp - 1), for pp 2 and 4, m 1, 2, 4, 8, gpipe and 1f1b, on a
# small 4-block model. Usage: scripts/bench_pipeline.sh [build dir] (needs a prepared
# datasets/fortunes or prepares it). Prints a markdown table (docs/PERFORMANCE.md).
set -euo pipefail
BUILD=${1:-build}
MOE="$BUILD/moe"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 MOE_THREADS=${MOE_THREADS:-1}
WORK=$(mktemp -d /tmp/moe_bench_pp.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DATA=datasets/fortunes
[ -f "$DATA/manifest.json" ] || { DATA="$WORK/fortunes"; "$MOE" data prepare --input /usr/share/games/fortunes --output "$DATA" >/dev/null; }
STEPS=${STEPS:-8}
args=(--config configs/tiny.yaml --quiet --set data.path="$DATA" --set train.steps="$STEPS"
      --set train.log_every=$((STEPS / 2)) --set checkpoint.every=0 --set checkpoint.resume=never
      --set train.batch_size=16 --set model.seq_len=64 --set model.d_model=64 --set model.n_layers=4
      --set model.moe_every=2 --set profile.load_balance=false)
echo "| pp | m | schedule | measured bubble_frac | theory (pp-1)/(v m+pp-1) | step s |"
echo "|---|---|---|---|---|---|"
# "1f1b v2": interleaved 1F1B with 2 model chunks per rank (pp 2 only: 4 blocks = 4 virtual stages).
for pp in 2 4; do
  for m in 1 2 4 8; do
    for schedule in gpipe 1f1b "1f1b v2"; do
      v=1
      [ "$schedule" = "1f1b v2" ] && v=2
      [ "$v" = 2 ] && { [ "$pp" = 2 ] && [ $((m % pp)) = 0 ] || continue; }
      mpirun --oversubscribe -np "$pp" "$MOE" train "${args[@]}" --set parallel.pp="$pp" \
        --set parallel.microbatches="$m" --set parallel.schedule="${schedule% v2}" \
        --set parallel.virtual_stages="$v" --run-dir "$WORK/r" >/dev/null
      # The last line averages the second half of the steps (warm-up excluded).
      python3 - "$WORK/r/metrics.jsonl" "$pp" "$m" "$schedule" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
step_s = 16 * 64 / r["tokens_per_s"]
print(f'| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {r["bubble_frac"]:.3f} | {r["bubble_frac_theory"]:.3f} | {step_s:.3f} |')
PY
      rm -rf "$WORK/r"
    done
  done
done
