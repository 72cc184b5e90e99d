#!/usr/bin/env bash
# Measures this machine and writes the hardware profile configs/hardware/cpu_local.yaml for
# `moe plan` (docs/planning.md, "Calibration"): the real kernels at CONFIG's shapes in one process
# (one thread, then all cores), then MPI latency, bandwidth and sync cost between 2 local ranks.
# Usage: scripts/calibrate_cpu.sh [OUT.yaml] [BUILD_DIR] [CONFIG.yaml]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/configs/hardware/cpu_local.yaml}
build=${2:-$root/build}
config=${3:-$root/configs/bench_cpu.yaml}
if [ ! -x "$build/tests/calibrate_cpu" ] || [ -z "${MOE_NO_BUILD:-}" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j2 --target calibrate_cpu >/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/tests/calibrate_cpu" compute "$config" > "$tmp/compute.yaml"
head -1 "$tmp/compute.yaml"
mpirun --oversubscribe -np 2 "$build/tests/calibrate_cpu" comm "$tmp/compute.yaml" "$out"
echo "wrote $out"
