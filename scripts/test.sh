#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, end-to-end, multi-rank under
# mpirun). Exits non-zero on any failure. CI (.ci/run) calls this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install_deps.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j"${JOBS:-2}" --timeout 900
