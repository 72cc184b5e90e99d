#!/usr/bin/env bash
# CPU training throughput of moe against the PyTorch reference (scripts/reference/moe_ref.py: the
# same model, training step, data and thread count), side by side in one run, repeated.
# Usage: scripts/bench_cpu.sh [--precision fp32|bf16|both] [threads] [timed steps] [repeats]
#        (defaults: both, nproc, 4, 2)
# Per repeat and precision: bench_peak measures the fp32 GEMM peak (the faster of OpenBLAS sgemm and
# the AVX-512 fp32 kernel, kernels/cpu/gemm_f32.h) and the bf16 GEMM kernel's
# peak (square 1024, best of 10) and the trainer's FLOPs per token; then moe trains
# configs/bench_cpu.yaml for 2 warm-up + N steps with train.precision set, and PyTorch runs the same
# steps on the same resolved config (bf16: torch.autocast("cpu", bfloat16) around the forward, fp32
# master weights and AdamW, as moe). Reports tokens/s (median step), MFU of fp32 runs against the
# sgemm peak and of bf16 runs against the bf16 peak (both from bench_peak, this repeat), moe's time
# per phase, and the ratios moe / PyTorch per precision and moe bf16 / PyTorch fp32.
# metrics.jsonl's own `mfu` is against the trainer's fp32 sgemm peak in every precision (printed as
# "trainer mfu" for comparison).
# Installs python3-torch (optional, large) when missing. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE stay
# as the environment sets them (printed); MOE_BENCH_NATIVE_OPENBLAS=1 unsets both together.
# MOE_BUILD_DIR: use that build (its moe and tests/bench_peak) instead of building build/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
precision=both
if [ "${1:-}" = --precision ]; then
  precision=${2:?--precision needs fp32, bf16 or both}
  shift 2
fi
case "$precision" in
  fp32 | bf16) precisions=$precision ;;
  both) precisions="fp32 bf16" ;;
  *) echo "bench_cpu.sh: --precision must be fp32, bf16 or both, not '$precision'" >&2; exit 2 ;;
esac
threads=${1:-$(nproc)}
steps=${2:-4}
repeats=${3:-2}
warmup=2
build=${MOE_BUILD_DIR:-$root/build}
[ -n "${MOE_BUILD_DIR:-}" ] || bash scripts/build.sh >/dev/null
moe="$build/moe"
peak_bin="$build/tests/bench_peak"
for b in "$moe" "$peak_bin"; do
  [ -x "$b" ] || { echo "bench_cpu.sh: $b is missing: cmake --build $build --target moe bench_peak" >&2; exit 2; }
done
MOE_BIN="$moe" bash scripts/prepare_default_corpus.sh
PY=/usr/bin/python3
$PY -c "import torch" 2>/dev/null || bash scripts/install_deps.sh python3-torch
if [ "${MOE_BENCH_NATIVE_OPENBLAS:-0}" = 1 ]; then unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; fi
# One thread count for everything: moe's OpenMP and OpenBLAS, torch's intra-op pool and its BLAS.
export MOE_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "avx512_bf16: $(grep -qw avx512_bf16 /proc/cpuinfo && echo yes || echo no); threads $threads;" \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset};" \
  "OMP_WAIT_POLICY=$OMP_WAIT_POLICY; torch $($PY -c 'import torch; print(torch.__version__)')"
for r in $(seq 1 "$repeats"); do
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  for p in $precisions; do
    "$peak_bin" configs/bench_cpu.yaml >"$out/peak_${p}_$r.json"  # just before the run it divides
    run="$out/moe_${p}_$r"
    "$moe" train --config configs/bench_cpu.yaml --run-dir "$run" --quiet --set checkpoint.resume=never \
      --set train.steps=$((warmup + steps)) --set train.log_every=1 --set checkpoint.every=0 \
      --set train.precision="$p" --set profile.load_balance=true --set profile.every=1
    $PY scripts/reference/moe_ref.py bench --config "$run/config.yaml" --steps "$steps" --warmup $warmup \
      --threads "$threads" --precision "$p" >"$out/torch_${p}_$r.json"
  done
  $PY scripts/bench_cpu_report.py "$out" "$r" "$warmup" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" $precisions
done
