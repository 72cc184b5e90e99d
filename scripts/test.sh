#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, end-to-end, multi-rank under
# mpirun). Exits non-zero on any failure. CI (.ci/run) calls this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install_deps.sh
# MOE_SANITIZE=1: only the unit tests, built with ASan + UBSan in build-asan/ (any report fails).
if [ "${MOE_SANITIZE:-0}" = 1 ]; then
  asan="$root/build-asan"
  cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_CUDA=OFF \
        -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" >/dev/null
  cmake --build "$asan" -j"${JOBS:-2}" --target moe_unit_tests
  # Leak checking is off: Open MPI's dlopen'ed plugins keep allocations until exit and are unloaded
  # by then, so LeakSanitizer cannot attribute (or suppress) them. Memory errors and UB still fail.
  MOE_THREADS=1 MOE_SOURCE_DIR="$root" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$asan/tests/moe_unit_tests"
  exit
fi
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"${JOBS:-2}" --timeout 900
