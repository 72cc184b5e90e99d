#!/usr/bin/env bash
# Training throughput of configs/bench_cpu.yaml in fp32, bf16 and fp16, side by side in one run
# (the precisions alternate within each repeat, so machine load hits them alike).
# Usage: scripts/bench_precision.sh [threads] [timed steps] [repeats]   (defaults: nproc, 4, 2)
# Per run: 2 warm-up steps + N timed steps; reports the median step's tokens/s and phase times.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE stay as the environment sets them (printed); set
# MOE_BENCH_NATIVE_OPENBLAS=1 to unset both together (OpenBLAS then picks its kernel for this CPU).
# MOE_BUILD_DIR: use that build instead of building build/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
steps=${2:-4}
repeats=${3:-2}
warmup=2
if [ -n "${MOE_BUILD_DIR:-}" ]; then
  moe="$MOE_BUILD_DIR/moe"
else
  bash scripts/build.sh >/dev/null
  moe="$root/build/moe"
fi
MOE_BIN="$moe" bash scripts/prepare_default_corpus.sh
if [ "${MOE_BENCH_NATIVE_OPENBLAS:-0}" = 1 ]; then unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; fi
export MOE_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "avx512_bf16: $(grep -qw avx512_bf16 /proc/cpuinfo && echo yes || echo no); threads $threads;" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
for r in $(seq 1 "$repeats"); do
  echo "repeat $r (load average $(cut -d' ' -f1-3 /proc/loadavg) before):"
  for p in fp32 bf16 fp16; do
    "$moe" train --config configs/bench_cpu.yaml --run-dir "$out/${p}_$r" --quiet --set checkpoint.resume=never \
      --set train.steps=$((warmup + steps)) --set train.log_every=1 --set checkpoint.every=0 \
      --set train.precision=$p --set profile.load_balance=true --set profile.every=1
    /usr/bin/python3 - "$out/${p}_$r" "$warmup" "$p" "$out/fp32_$r" <<'PY'
import json, statistics, sys
import h5py
run, warmup, prec, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
tps = lambda d: statistics.median(json.loads(l)["tokens_per_s"] for l in list(open(f"{d}/metrics.jsonl"))[warmup:])
with h5py.File(f"{run}/load_balance.h5", "r") as f:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["phase_seconds"].attrs["phases"]]
    secs = f["phase_seconds"][warmup:]
med = {n: statistics.median(float(s[i]) for s in secs) for i, n in enumerate(names)}
step = med.pop("step")
parts = "  ".join(f"{n} {v:.3f}" for n, v in med.items() if v > 0.0005)
print(f"  {prec}  {tps(run):8.1f} tokens/s  ({tps(run) / tps(base):.2f}x fp32)   step {step:.3f} s: {parts}")
PY
  done
done
