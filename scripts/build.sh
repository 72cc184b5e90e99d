#!/usr/bin/env bash
# Configures (once) and builds moe in BUILD_DIR (default build/), Release, -j2.
# MOE_CUDA=AUTO|ON|OFF selects the CUDA backend (AUTO: on when nvcc is found; CUDA code is compiled
# for sm_90 only, to keep builds short).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMOE_CUDA="${MOE_CUDA:-AUTO}" \
        -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
fi
cmake --build "$build" -j"${JOBS:-2}"
