#!/usr/bin/env bash
# On a machine with a GPU (and no MPI, HDF5 or yaml-cpp): the `moe` trainer with train.device cuda,
# from build-gpu-pack/trainer.tar.xz (scripts/build_gpu_trainer_bundle.sh). Checks that tiny.yaml
# trains on the GPU with the CPU's losses, that checkpoints move GPU -> CPU and CPU -> GPU with the
# uninterrupted losses, that two micro-batches per step (gradient accumulation) train as on the
# CPU, that recompute block trains as without it, and measures configs/gpu_bench.yaml through the trainer. Run from the
# repository root; logs go to $OUT when set. Exit status: 0 when every check passed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/moe-gpu-train
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xJf "$root/build-gpu-pack/trainer.tar.xz"
t=$work/trainer
# Open MPI's plugins and help files where Debian's libmpi looks for them; one process runs as an
# isolated singleton (no daemon).
mkdir -p /usr/lib/x86_64-linux-gnu/openmpi/lib /usr/share /etc
[ -d /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3 ] || cp -r "$t/ompi/openmpi3" /usr/lib/x86_64-linux-gnu/openmpi/lib/
[ -d /usr/share/openmpi ] || cp -r "$t/ompi/share" /usr/share/openmpi
[ -d /etc/openmpi ] || cp -r "$t/ompi/etc" /etc/openmpi
cuda_libs=$(dirname "$(find / -path /proc -prune -o -name 'libcublasLt.so.13' -print 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$t/lib:$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_MCA_ess_singleton_isolated=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=pt2pt OMPI_MCA_mca_base_component_show_load_errors=0
moe=$t/bin/moe
out=${OUT:-$work}
log() { tee -a "$out/gpu_train_check.log"; }
status=0
tiny=(--config "$root/configs/tiny.yaml" --quiet --set data.path="$t/fortunes" --set train.steps=40
      --set train.log_every=1 --set checkpoint.every=20 --set profile.load_balance=false)
train() {  # train NAME args...
  local name=$1; shift
  echo "== moe train $name" | log
  "$moe" train "${tiny[@]}" --run-dir "$work/$name" "$@" 2>&1 | tail -3 | log
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "FAILED: $name exit $rc" | log; status=1; }
}
train cpu --set train.device=cpu --set checkpoint.resume=never
train gpu --set train.device=cuda --set checkpoint.resume=never
train gpu_to_cpu --set train.device=cpu --set checkpoint.resume="$work/gpu/checkpoints/step_00000020"
train cpu_to_gpu --set train.device=cuda --set checkpoint.resume="$work/cpu/checkpoints/step_00000020"
train gpu_bf16 --set train.device=cuda --set train.precision=bf16 --set checkpoint.resume=never
# gradient accumulation: two micro-batches per step on each device
train cpu_mb2 --set train.device=cpu --set parallel.microbatches=2 --set checkpoint.resume=never
train gpu_mb2 --set train.device=cuda --set parallel.microbatches=2 --set checkpoint.resume=never
train gpu_recompute --set train.device=cuda --set parallel.recompute=block --set checkpoint.resume=never
python3 - "$work" <<'PY' 2>&1 | log
import json, sys
w = sys.argv[1]
def losses(name):
    try:
        return {r["step"]: r["loss"] for r in map(json.loads, open(f"{w}/{name}/metrics.jsonl"))}
    except OSError:
        return {}
# The first steps agree as closely as the single-step test (tests/gpu); later steps drift apart as
# training amplifies rounding-level differences (float atomics, summation order), as between CPU
# layouts over long runs: the bound there is looser.
ok = True
for name, ref, early_tol, tol in [("gpu", "cpu", 2e-5, 3e-3), ("gpu_to_cpu", "cpu", 3e-3, 3e-3),
                                  ("cpu_to_gpu", "cpu", 2e-5, 3e-3), ("gpu_bf16", "cpu", 3e-2, 3e-2),
                                  ("gpu_mb2", "cpu_mb2", 2e-5, 3e-3), ("gpu_recompute", "cpu", 2e-5, 3e-3)]:
    got, cpu = losses(name), losses(ref)
    common = sorted(set(got) & set(cpu))
    diff = {s: abs(got[s] - cpu[s]) / abs(cpu[s]) for s in common}
    early = max((diff[s] for s in common[:3]), default=float("inf"))
    worst = max(diff.values(), default=float("inf"))
    good = bool(common) and early <= early_tol and worst <= tol and max(common) == 40
    ok &= good
    curve = " ".join(f"{s}:{diff[s]:.1e}" for s in common if s in (1, 2, 3, 5, 10, 20, 21, 22, 30, 40))
    print(f"{name}: steps {min(common, default=0)}-{max(common, default=0)}, relative loss difference to {ref} "
          f"first 3 steps {early:.1e} (<= {early_tol:g}), worst {worst:.1e} (<= {tol:g}): {'ok' if good else 'FAILED'}")
    print(f"  by step {curve}")
sys.exit(0 if ok else 1)
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# moe generate with the KV cache on the GPU and on the CPU: greedy decoding gives the same text.
for dev in cpu cuda; do
  "$moe" generate --from "$work/gpu" --prompt "The " --max-tokens 48 --temperature 0 --device $dev --json \
    --set data.path="$t/fortunes" > "$work/generate_$dev.json" 2>&1 || { echo "FAILED: generate $dev" | log; status=1; }
done
python3 - "$work" <<'PY' 2>&1 | log
import json, sys
w = sys.argv[1]
a, b = (json.load(open(f"{w}/generate_{d}.json")) for d in ("cpu", "cuda"))
same = a["tokens"] == b["tokens"]
print(f"generate (greedy, 48 tokens): cuda {'matches' if same else 'DIFFERS FROM'} cpu: {b['completion']!r}")
sys.exit(0 if same else 1)
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== moe train configs/gpu_bench.yaml (train.device cuda, 12 steps)" | log
"$moe" train --config "$root/configs/gpu_bench.yaml" --set data.path="$t/fortunes" --set train.steps=12 \
  --set train.log_every=4 --set checkpoint.every=0 --set checkpoint.resume=never --run-dir "$work/bench" 2>&1 | log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
for variant in "bench_dense --set model.moe_every=0" "bench_b16 --set train.batch_size=16"; do
  set -- $variant
  name=$1; shift
  echo "== moe train configs/gpu_bench.yaml $*" | log
  "$moe" train --config "$root/configs/gpu_bench.yaml" --set data.path="$t/fortunes" --set train.steps=12 \
    --set train.log_every=4 --set checkpoint.every=0 --set checkpoint.resume=never --run-dir "$work/$name" "$@" \
    --quiet 2>&1 | log
done
python3 - "$work" <<'PY' 2>&1 | log
import json, sys
for name in ["bench", "bench_dense", "bench_b16"]:
    try:
        r = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl")][-1]
    except (OSError, IndexError):
        print(name, "no metrics")
        continue
    print(f"{name}: step {r['step']} loss {r['loss']:.3f} tokens/s {r['tokens_per_s']:.0f} mfu {r['mfu']:.3f} "
          f"mem {r['mem_bytes'] / 2**30:.1f} GiB")
PY
echo "== gpu_train_check: exit $status" | log
exit $status
