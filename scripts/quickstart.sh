#!/usr/bin/env bash
# The main job: install, build, prepare the default corpus, train configs/tiny.yaml, then show
# the loss curve and the load-balance profile across experts (moe profile).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install_deps.sh
bash scripts/build.sh
bash scripts/prepare_default_corpus.sh
# Idle OpenMP threads sleep instead of spinning, so a busy machine does not stall the step.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
run=runs/quickstart
rm -rf "$run"
build/moe train --config configs/tiny.yaml --run-dir "$run"
echo
# The loss curve summary and the load balance across experts, layers and time.
build/moe profile "$run"
echo
echo "HTML report: build/moe profile $run --html $run/report.html"
