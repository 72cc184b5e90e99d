#!/usr/bin/env bash
# CPU training throughput of moe against the PyTorch reference (scripts/reference/moe_ref.py: the
# same model, training step, data and thread count), side by side in one run, repeated.
# Usage: scripts/bench_cpu.sh [threads] [timed steps] [repeats]     (defaults: nproc, 4, 2)
# Per repeat: moe trains configs/bench_cpu.yaml for 2 warm-up + N steps, then PyTorch runs the same
# steps on the same resolved config; reports tokens/s (median step), MFU against the OpenBLAS sgemm
# peak the trainer measured in the same run, moe's time per phase, and the ratio moe / PyTorch.
# Installs python3-torch (optional, large) when missing. Leaves OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE as the environment sets them and prints them beside the figures.
# MOE_BUILD_DIR: use that build instead of building build/ (for engineers with their own folder).
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
PY=/usr/bin/python3
$PY -c "import torch" 2>/dev/null || bash scripts/install_deps.sh python3-torch
# One thread count for everything: moe's OpenMP and OpenBLAS, torch's intra-op pool and its BLAS.
export MOE_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $threads;" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset};" \
  "OMP_WAIT_POLICY=$OMP_WAIT_POLICY; torch $($PY -c 'import torch; print(torch.__version__)')"
for r in $(seq 1 "$repeats"); do
  run="$out/moe_$r"
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  "$moe" train --config configs/bench_cpu.yaml --run-dir "$run" --quiet --set checkpoint.resume=never \
    --set train.steps=$((warmup + steps)) --set train.log_every=1 --set checkpoint.every=0 \
    --set profile.load_balance=true --set profile.every=1
  $PY scripts/reference/moe_ref.py bench --config "$run/config.yaml" --steps "$steps" --warmup $warmup \
    --threads "$threads" >"$out/torch_$r.json"
  $PY - "$run" "$out/torch_$r.json" "$warmup" "$r" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, statistics, sys
import h5py
run, torch_json, warmup, rep, load0, load1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")][warmup:]
tps = statistics.median(r["tokens_per_s"] for r in rows)
mfu = statistics.median(r["mfu"] for r in rows)
ref = json.load(open(torch_json))
print(f"repeat {rep} (load average {load0} before, {load1} after):")
print(f"  moe      {tps:8.1f} tokens/s  MFU {100 * mfu:5.1f}%   ({len(rows)} steps after {warmup} warm-up)")
print(f"  PyTorch  {ref['tokens_per_s']:8.1f} tokens/s  MFU {100 * mfu * ref['tokens_per_s'] / tps:5.1f}%"
      f"   (same FLOPs and peak)")
print(f"  moe / PyTorch = {tps / ref['tokens_per_s']:.2f}x")
with h5py.File(f"{run}/load_balance.h5", "r") as f:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["phase_seconds"].attrs["phases"]]
    secs = f["phase_seconds"][warmup:]
med = {n: statistics.median(float(s[i]) for s in secs) for i, n in enumerate(names)}
step = med.pop("step")
other = step - sum(med.values())  # embedding, norms, LM head, loss, grad norm, zeroing
parts = "  ".join(f"{n} {v:.3f}" for n, v in list(med.items()) + [("other", other)] if v > 0.0005)
print(f"  moe phases, median s/step: step {step:.3f} = {parts}")
EOF
done
