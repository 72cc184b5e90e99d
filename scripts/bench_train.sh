#!/usr/bin/env bash
# Trainer throughput: tokens/s and MFU (model FLOPs / time / measured OpenBLAS sgemm peak) on
# configs/tiny.yaml and configs/bench_cpu.yaml, plus the loader's rate on the same data for the
# "loader >= 100x trainer" check. Usage: scripts/bench_train.sh [threads]
# Leaves OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as the environment sets them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/build.sh >/dev/null
bash scripts/prepare_default_corpus.sh
threads=${1:-$(nproc)}
export MOE_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
for cfg in tiny bench_cpu; do
  steps=60; [ $cfg = bench_cpu ] && steps=8
  build/moe train --config configs/$cfg.yaml --run-dir "$out/$cfg" --quiet --set checkpoint.resume=never \
    --set train.steps=$steps --set train.log_every=1 --set checkpoint.every=0
  python3 - "$out/$cfg/metrics.jsonl" "$cfg" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # skip warm-up steps
tps = statistics.median(r["tokens_per_s"] for r in rows)
mfu = statistics.median(r["mfu"] for r in rows)
print(f"{sys.argv[2]:10s} trainer {tps:10.0f} tokens/s   MFU {100*mfu:5.1f}%   ({len(rows)} steps after warm-up)")
PY
done
build/tests/bench_loader datasets/fortunes 2>/dev/null | tail -n 4 || true
