#!/usr/bin/env bash
# One-shot check on a machine with a GPU, run from the repository root with the prebuilt bundle
# (scripts/build_gpu_bundle.sh) in build-gpu/: prints nvidia-smi, runs every GPU-vs-CPU test, the
# kernel benchmark and the end-to-end training benchmark on configs/gpu_bench.yaml (MoE and its
# dense twin), then scripts/gpu_train_check.sh when build-gpu-pack/trainer.tar.xz is there, then the
# MoE model at other expert-buffer allowances and with recompute block: one device call for everything, within the device
# tool's 600 s per call (the timeouts sum to 590 s; about four minutes on an H100). Writes the logs
# to $OUT when it is set. Exit status: that of the tests.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${GPU_BUNDLE_DIR:-$root/build-gpu}
[ -x "$bundle/moe_gpu_tests" ] || bundle=$(cd "$(dirname "$0")" && pwd)  # run from inside the bundle
out=${OUT:-}
log() { if [ -n "$out" ]; then tee -a "$out/$1"; else cat; fi; }

# cuBLAS and NCCL are linked as shared libraries: look for them in the toolkit and in pip's nvidia wheels.
find_lib() {
  ldconfig -p 2>/dev/null | grep -q "$1" && return
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
           $(find / -path /proc -prune -o -name "$1" -printf '%h\n' 2>/dev/null | head -3); do
    [ -e "$d/$1" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && return
  done
}
find_lib libcublasLt.so.13
find_lib libnccl.so.2

{
  echo "== gpu_check $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi || echo "nvidia-smi failed"
  echo "== libraries"
  ldd "$bundle/moe_gpu_tests"
} 2>&1 | log gpu_check.log

echo "== moe_gpu_tests" | log gpu_check.log
timeout 120 "$bundle/moe_gpu_tests" --gtest_brief=0 2>&1 | log gpu_tests.log
tests_rc=${PIPESTATUS[0]}

echo "== bench_gpu_ops" | log gpu_check.log
timeout 90 "$bundle/bench_gpu_ops" 2>&1 | log gpu_bench.log
bench_rc=${PIPESTATUS[0]}

# configs/gpu_bench.yaml's model as key=value arguments (PyYAML is on the GPU machines; without it
# the benchmark's defaults, which are the same model, apply).
bench_args=$(python3 - "$root/configs/gpu_bench.yaml" <<'PY' 2>/dev/null
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
m, e, t = c["model"], c["moe"], c["train"]
keys = dict(vocab_size=m["vocab_size"], d_model=m["d_model"], n_layers=m["n_layers"], n_heads=m["n_heads"],
            n_kv_heads=m["n_kv_heads"], seq_len=m["seq_len"], moe_every=m["moe_every"], ffn_hidden=m["ffn_hidden"],
            num_experts=e["num_experts"], top_k=e["top_k"], expert_hidden=e["expert_hidden"],
            batch=t["batch_size"], precision=t["precision"])
print(" ".join(f"{k}={v}" for k, v in keys.items()))
PY
)
echo "== bench_gpu_train $bench_args" | log gpu_check.log
# shellcheck disable=SC2086
timeout 120 "$bundle/bench_gpu_train" $bench_args 2>&1 | log gpu_train.log
train_rc=${PIPESTATUS[0]}

# The trainer itself (scripts/gpu_train_check.sh) where its bundle was carried along.
trainer_rc=skipped
if [ -f "$root/build-gpu-pack/trainer.tar.xz" ] && [ -f "$root/scripts/gpu_train_check.sh" ]; then
  echo "== gpu_train_check" | log gpu_check.log
  timeout 170 bash "$root/scripts/gpu_train_check.sh" >/dev/null 2>&1
  trainer_rc=$?
fi

# The expert-buffer allowance against skewed (random-init) routing: larger blocks per expert (fewer,
# larger batched GEMMs) against more padding rows computed.
for pad in 1.5 2.0; do
  echo "== bench_gpu_train only=moe gpu_expert_padding=$pad" | log gpu_check.log
  # shellcheck disable=SC2086
  timeout 30 "$bundle/bench_gpu_train" $bench_args only=moe gpu_expert_padding=$pad 2>&1 | log gpu_train.log
done
# Activation recomputation: the step time it costs and the activation memory it saves.
echo "== bench_gpu_train only=moe recompute=block" | log gpu_check.log
# shellcheck disable=SC2086
timeout 30 "$bundle/bench_gpu_train" $bench_args only=moe recompute=block 2>&1 | log gpu_train.log

echo "== gpu_check: tests exit $tests_rc, bench exit $bench_rc, train bench exit $train_rc," \
     "trainer check exit $trainer_rc" | log gpu_check.log
exit "$tests_rc"
