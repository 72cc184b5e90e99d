#!/usr/bin/env bash
# Measures this machine (sgemm, memory bandwidth, MPI point-to-point between 2 local ranks) and
# writes the hardware profile configs/hardware/cpu_local.yaml for `moe plan` (docs/planner.md).
# Usage: scripts/calibrate_cpu.sh [OUT.yaml] [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/configs/hardware/cpu_local.yaml}
build=${2:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target calibrate_cpu >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
mpirun --oversubscribe -np 2 "$build/tests/calibrate_cpu" "$out"
echo "wrote $out"
