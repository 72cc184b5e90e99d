#!/usr/bin/env bash
# Validates `moe plan` against `moe train` on this machine (docs/planning.md, "Validation"):
# calibrates the cpu_local profile, then for each layout of configs/bench_cpu.yaml (threads per
# rank x ranks x ep) trains a few steps under mpirun and compares the measured step time (median
# after the warm-up steps) and rank 0's mem_bytes with the planner's estimate of that layout, given
# the background load sampled during the run (/proc/stat procs_running, other processes' threads).
# Prints one table; exits 1 when a step time is off by more than 25% or a memory by more than 10%.
# Usage: scripts/bench_plan.sh [BUILD_DIR]
#   BENCH_LAYOUTS="threads:ranks:ep[:etp[:zero]] ..."  (default: 1:1:1 2:1:1 1:2:1 1:2:2 1:4:1 1:4:2 1:4:4;
#     etp > 1 runs over dp ranks, tp stays 1)
#   BENCH_STEPS (4), BENCH_WARMUP (1), BENCH_BATCH (4), BENCH_PROFILE (calibrate afresh when unset)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
layouts=${BENCH_LAYOUTS:-"1:1:1 2:1:1 1:2:1 1:2:2 1:4:1 1:4:2 1:4:4"}
steps=${BENCH_STEPS:-4}
warmup=${BENCH_WARMUP:-1}
batch=${BENCH_BATCH:-4}
config=$root/configs/bench_cpu.yaml
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target moe calibrate_cpu >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

profile=${BENCH_PROFILE:-$tmp/cpu_local.yaml}
if [ -z "${BENCH_PROFILE:-}" ]; then
  MOE_NO_BUILD=1 "$root/scripts/calibrate_cpu.sh" "$profile" "$build" "$config" >"$tmp/calibrate.log"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); profile $profile"
echo "bench_cpu.yaml, batch $batch x 256 tokens, $steps steps (first $warmup discarded); load $(cut -d' ' -f1-3 /proc/loadavg)"

# Runnable threads (procs_running) every 0.2 s while a run lasts, for the table's load column.
sample_load() {
  while :; do awk '/procs_running/ {print $2}' /proc/stat; sleep 0.2; done
}

for spec in $layouts; do
  IFS=: read -r threads ranks ep etp zero <<<"$spec"
  sets=(--set parallel.dp="$ranks" --set parallel.ep="$ep" --set parallel.etp="${etp:-1}"
        --set parallel.zero_stage="${zero:-0}" --set train.steps="$steps" --set train.batch_size="$batch"
        --set profile.load_balance=false --set train.log_every=1)
  run=$tmp/run_${spec//:/_}
  sample_load >"$tmp/load_$spec.txt" &
  sampler=$!
  MOE_THREADS=$threads mpirun --oversubscribe -np "$ranks" "$build/moe" train --config "$config" "${sets[@]}" \
    --run-dir "$run" >"$tmp/train_$spec.log" 2>&1 || { kill "$sampler"; cat "$tmp/train_$spec.log"; exit 1; }
  kill "$sampler"
  cp "$run/metrics.jsonl" "$tmp/metrics_$spec.jsonl"
  # The machine is shared: other processes' runnable threads during the run (minus our ranks'
  # threads and the sampler) are an input of the estimate, like the expert imbalance.
  other=$(awk -v own=$((ranks * threads + 1)) '{s += $1; n++} END {x = n ? s / n - own : 0; print (x > 0 ? x : 0)}' \
    "$tmp/load_$spec.txt")
  "$build/moe" plan --config "$config" "${sets[@]}" --world "$ranks" --threads "$threads" --hardware "$profile" \
    --background-load "$other" --json --top 1 >"$tmp/plan_$spec.json"
done

"$py" - "$tmp" "$warmup" $layouts <<'PY'
import json, statistics, sys
tmp, warmup, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows, bad = [], 0
print(f"| threads x ranks | ep | etp | zero | measured step | predicted step | pred/meas | measured mem | predicted mem | pred/meas | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for spec in specs:
    v = list(map(int, spec.split(":")))
    t, r, ep, etp, zero = v + [1, 0][len(v) - 3:]
    plan = json.load(open(f"{tmp}/plan_{spec}.json"))["configured"]
    recs = [json.loads(l) for l in open(f"{tmp}/metrics_{spec}.jsonl") if l.strip()]
    tokens = plan["tokens_per_s"] * plan["step_s"]["total"]
    step = statistics.median(tokens / x["tokens_per_s"] for x in recs[warmup:])
    mem = recs[-1]["mem_bytes"]
    loads = [float(x) for x in open(f"{tmp}/load_{spec}.txt") if x.strip()]
    other = max(0.0, statistics.mean(loads) - r * t - 1) if loads else float("nan")  # minus ours and awk
    ps, pm = plan["step_s"]["total"], plan["memory_bytes"]["total"]
    ts, ms = ps / step, pm / mem
    flag = "" if abs(ts - 1) <= 0.25 and abs(ms - 1) <= 0.10 else " **out of bounds**"
    bad += bool(flag)
    print(f"| {t} x {r} | {ep} | {etp} | {zero} | {step:.3f} s | {ps:.3f} s | {ts:.2f} | {mem / 2**20:,.1f} MiB | "
          f"{pm / 2**20:,.1f} MiB | {ms:.3f} | {other:.1f}{flag} |")
print(f"{bad} of {len(specs)} layouts outside 25% (time) / 10% (memory)")
sys.exit(1 if bad else 0)
PY
