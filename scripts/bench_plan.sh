#!/usr/bin/env bash
# Validates `moe plan` against `moe train` on this machine (docs/planning.md, "Validation"):
# calibrates the cpu_local profile, then for each layout of configs/bench_cpu.yaml (threads per
# rank x ranks x ep) trains a few steps under mpirun and compares the measured step time (median
# after the warm-up steps) and rank 0's mem_bytes with the planner's estimate of that layout, given
# the background load sampled during the run (other sessions' runnable threads, and their presence
# per core, which is what the cores are shared by under Linux autogroup scheduling).
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
MOE_BIN=$build/moe "$root/scripts/prepare_default_corpus.sh" >/dev/null  # bench_cpu.yaml's data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

profile=${BENCH_PROFILE:-$tmp/cpu_local.yaml}
if [ -z "${BENCH_PROFILE:-}" ]; then
  MOE_NO_BUILD=1 "$root/scripts/calibrate_cpu.sh" "$profile" "$build" "$config" >"$tmp/calibrate.log"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); profile $profile"
echo "bench_cpu.yaml, batch $batch x 256 tokens, $steps steps (first $warmup discarded); load $(cut -d' ' -f1-3 /proc/loadavg)"

# Every 0.2 s while a run lasts: other sessions' runnable threads, their presence per core (sum
# over other sessions of min(runnable threads, cores) / cores), and the cores this run's session
# gets when Linux autogroup shares the cores fairly between sessions (water-filling: each session
# gets an equal part, at most its runnable threads; argv[1] = this run's threads). "Ours" is this
# script's session, which mpirun and its ranks inherit.
cat >"$tmp/sample.py" <<'PYS'
import os, sys, time
cores, mine = os.cpu_count(), min(int(sys.argv[1]), os.cpu_count())
own = open("/proc/self/autogroup").read().split()[0]

def water_fill(demands, capacity):
    # The level s with sum(min(d, s)) = capacity (or every demand met).
    left, rest = capacity, sorted(demands)
    while rest:
        level = left / len(rest)
        if rest[0] > level:
            return level
        left -= rest.pop(0)
    return float("inf")

while True:
    groups = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            group = open(f"/proc/{pid}/autogroup").read().split()[0]
            tasks = os.listdir(f"/proc/{pid}/task")
        except (OSError, IndexError):  # gone, or a kernel thread (no autogroup)
            continue
        for tid in tasks:
            try:
                state = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state == "R" and group != own:
                groups[group] = groups.get(group, 0) + 1
    others = [min(n, cores) for n in groups.values()]
    ours = min(mine, water_fill(others + [mine], cores))
    print(sum(groups.values()), sum(others) / cores, ours, flush=True)
    time.sleep(0.2)
PYS
# The same profile under the thread-fair sharing model, for comparison.
sed 's/^autogroup: .*/autogroup: false/' "$profile" >"$tmp/threads_model.yaml"
autogroup=$(awk '/^autogroup:/ {print $2}' "$profile")
cores=$(nproc)

for spec in $layouts; do
  IFS=: read -r threads ranks ep etp zero <<<"$spec"
  sets=(--set parallel.dp="$ranks" --set parallel.ep="$ep" --set parallel.etp="${etp:-1}"
        --set parallel.zero_stage="${zero:-0}" --set train.steps="$steps" --set train.batch_size="$batch"
        --set train.log_every=1)
  run=$tmp/run_${spec//:/_}
  "$py" "$tmp/sample.py" $((ranks * threads)) >"$tmp/load_$spec.txt" &
  sampler=$!
  # The CPU time the run's processes got over its wall time: the cores this session really had.
  MOE_THREADS=$threads "$py" -c 'import resource, subprocess, sys, time
t = time.time(); rc = subprocess.call(sys.argv[2:]); r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{(r.ru_utime + r.ru_stime) / (time.time() - t)}\n"); sys.exit(rc)' "$tmp/cores_$spec.txt" \
    mpirun --oversubscribe -np "$ranks" "$build/moe" train --config "$config" "${sets[@]}" \
    --run-dir "$run" >"$tmp/train_$spec.log" 2>&1 || { kill "$sampler"; cat "$tmp/train_$spec.log"; exit 1; }
  kill "$sampler"
  cp "$run/metrics.jsonl" "$tmp/metrics_$spec.jsonl"
  # The machine is shared: the other sessions' load during the run is an input of the estimate,
  # like the expert imbalance. Under autogroup the planner's background_load is the one that
  # gives this session the cores its processes were measured to use (CPU time / wall time;
  # docs/planning.md, "Validation").
  read -r other_threads other_sessions ours < <(awk '{t += $1; g += $2; o += $3; n++}
    END {if (n) print t / n, g / n, o / n; else print 0, 0, 1}' "$tmp/load_$spec.txt")
  load=$other_threads
  mine=$((ranks * threads < cores ? ranks * threads : cores))
  used=$(cat "$tmp/cores_$spec.txt")
  [ "$autogroup" = true ] && load=$(awk -v m="$mine" -v o="$used" 'BEGIN {x = m / o - 1; print (x > 0 ? x : 0)}')
  # The busiest expert rank's load over the mean, from the run's own routing (load_balance.h5):
  # per layer, the largest share of a rank's experts x ep; averaged over the layers.
  "$build/moe" profile "$run" --json >"$tmp/profile_$spec.json"
  imbalance=$("$py" - "$tmp/profile_$spec.json" "$ep" <<'PYI'
import json, statistics, sys
lb, ep = json.load(open(sys.argv[1]))["load_balance"], int(sys.argv[2])
per_layer = []
for layer in lb["layers"]:
    shares, n = layer["shares"], len(layer["shares"]) // ep
    per_layer.append(max(sum(shares[r * n:(r + 1) * n]) for r in range(ep)) * ep)
print(statistics.mean(per_layer) if per_layer else 1.0)
PYI
)
  echo "$imbalance" >"$tmp/imbalance_$spec.txt"
  common=(--config "$config" "${sets[@]}" --world "$ranks" --threads "$threads" --json --top 1)
  "$build/moe" plan "${common[@]}" --hardware "$profile" --background-load "$load" --imbalance "$imbalance" \
    >"$tmp/plan_$spec.json"
  "$build/moe" plan "${common[@]}" --hardware "$tmp/threads_model.yaml" --background-load "$other_threads" \
    --imbalance "$imbalance" >"$tmp/plan_threads_$spec.json"
  # Rank 0's memory: its expert rows are near the mean, so no imbalance there.
  "$build/moe" plan "${common[@]}" --hardware "$profile" --background-load "$load" >"$tmp/plan_mem_$spec.json"
done

"$py" - "$tmp" "$warmup" "$autogroup" $layouts <<'PY'
import json, statistics, sys
tmp, warmup, autogroup, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
bad = 0
model = "session-fair (autogroup)" if autogroup == "true" else "thread-fair"
print(f"predicted: the profile's sharing model ({model}); thread-fair: every runnable thread shares the cores alike")
print("| threads x ranks | ep | etp | zero | rank imbalance | measured step | predicted step | pred/meas "
      "| thread-fair pred/meas | measured mem | predicted mem | pred/meas | other threads | other sessions / core "
      "| water-filled cores | cores used |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for spec in specs:
    v = list(map(int, spec.split(":")))
    t, r, ep, etp, zero = v + [1, 0][len(v) - 3:]
    plan = json.load(open(f"{tmp}/plan_{spec}.json"))["configured"]
    plan_threads = json.load(open(f"{tmp}/plan_threads_{spec}.json"))["configured"]
    plan_mem = json.load(open(f"{tmp}/plan_mem_{spec}.json"))["configured"]
    imbalance = float(open(f"{tmp}/imbalance_{spec}.txt").read())
    recs = [json.loads(l) for l in open(f"{tmp}/metrics_{spec}.jsonl") if l.strip()]
    tokens = plan["tokens_per_s"] * plan["step_s"]["total"]
    step = statistics.median(tokens / x["tokens_per_s"] for x in recs[warmup:])
    mem = recs[-1]["mem_bytes"]
    loads = [tuple(map(float, x.split())) for x in open(f"{tmp}/load_{spec}.txt") if x.strip()]
    threads_bg = statistics.mean(x[0] for x in loads) if loads else float("nan")
    sessions_bg = statistics.mean(x[1] for x in loads) if loads else float("nan")
    ours = statistics.mean(x[2] for x in loads) if loads else float("nan")
    used = float(open(f"{tmp}/cores_{spec}.txt").read())
    ps, pm = plan["step_s"]["total"], plan_mem["memory_bytes"]["total"]
    ts, ms = ps / step, pm / mem
    flag = "" if abs(ts - 1) <= 0.25 and abs(ms - 1) <= 0.10 else " **out of bounds**"
    bad += bool(flag)
    print(f"| {t} x {r} | {ep} | {etp} | {zero} | {imbalance:.2f} | {step:.3f} s | {ps:.3f} s | {ts:.2f} | "
          f"{plan_threads['step_s']['total'] / step:.2f} | {mem / 2**20:,.1f} MiB | {pm / 2**20:,.1f} MiB | {ms:.3f} | "
          f"{threads_bg:.1f} | {sessions_bg:.2f} | {ours:.2f} | {used:.2f}{flag} |")
print(f"{bad} of {len(specs)} layouts outside 25% (time) / 10% (memory)")
sys.exit(1 if bad else 0)
PY
