#!/usr/bin/env bash
# Activation recomputation on the CPU benchmark shape: configs/bench_cpu.yaml trained under each
# parallel.recompute mode (none, attention, moe, block) in one run, with tokens/s (median step
# after warm-up), mem_activations (Transformer::activation_bytes) and the process's peak resident
# memory (GNU time's maximum RSS: weights, gradients, moments, scratch and the allocator's slack too)
# side by side, and the process's CPU seconds (user + system, the whole run: start-up, warm-up and
# timed steps), which a loaded machine disturbs less than wall time.
# Usage: scripts/bench_recompute.sh [threads] [timed steps]     (defaults: nproc, 4)
# MOE_BUILD_DIR: use that build instead of building build/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cores=$(nproc)  # before OMP_NUM_THREADS is set: nproc honours it
threads=${1:-$cores}
steps=${2:-4}
warmup=2
if [ -n "${MOE_BUILD_DIR:-}" ]; then
  moe="$MOE_BUILD_DIR/moe"
else
  bash scripts/build.sh >/dev/null
  moe="$root/build/moe"
fi
MOE_BIN="$moe" bash scripts/prepare_default_corpus.sh
export MOE_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $threads;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) before"
for mode in none attention moe block; do
  /usr/bin/time -o "$out/$mode.rss" -f "%M %U %S" "$moe" train --config configs/bench_cpu.yaml --run-dir "$out/$mode" \
    --quiet --set checkpoint.resume=never --set train.steps=$((warmup + steps)) --set train.log_every=1 --set checkpoint.every=0 \
    --set parallel.recompute=$mode
done
python3 - "$out" "$warmup" <<'PY'
import json, statistics, sys
out, warmup = sys.argv[1], int(sys.argv[2])
res = {}
for mode in ("none", "attention", "moe", "block"):
    rows = [json.loads(l) for l in open(f"{out}/{mode}/metrics.jsonl")][warmup:]
    kb, user, system = open(f"{out}/{mode}.rss").read().split()[-3:]
    res[mode] = (statistics.median(r["tokens_per_s"] for r in rows), rows[-1]["mem_activations"],
                 int(kb) / 1024, float(user) + float(system))
tps0, mem0, _, cpu0 = res["none"]
print(f"{'recompute':>10} {'tokens/s':>9} {'vs none':>8} {'mem_activations':>16} {'vs none':>8} {'peak RSS':>12}"
      f" {'CPU s':>8} {'vs none':>8}")
for mode, (tps, mem, rss, cpu) in res.items():
    print(f"{mode:>10} {tps:9.1f} {tps / tps0:7.2f}x {mem / 2**20:12.1f} MiB {mem / mem0:7.2f}x"
          f" {rss:8.0f} MiB {cpu:8.1f} {cpu / cpu0:7.2f}x")
PY
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) after"
