#!/usr/bin/env bash
# Runs GPU tests on the CPU against the real kernel sources, through the host emulation in
# include/ (the CUDA threads of a block are fibers; see include/emu_runtime.h for what it cannot
# show). The kernel sources are copied with their launches (k<<<g, b, s, st>>>(args)) rewritten as
# emu::launch(...) calls and `extern __shared__` arrays as the emulated dynamic shared memory.
#   tests/gpu/emu/run.sh [--permute] [gtest filter]
#     tests/gpu/test_gpu_permute.cpp, test_gpu_gather_scatter.cpp and test_gpu_combine.cpp against
#     permute_counting.cu, gather_scatter.cu, combine.cu and expert_layout.cu, e.g.
#     'GpuGatherScatter*'. The CUB radix path is a stand-in (permute_paths.cpp).
#   tests/gpu/emu/run.sh --rows [gtest filter]
#     the row-wise and elementwise kernels: test_gpu_first_writers.cpp, test_gpu_elementwise.cpp,
#     test_gpu_softmax_ce.cpp, test_gpu_adamw.cpp, test_gpu_routing.cpp and test_gpu_router_grad.cpp
#     against rmsnorm, rope, convert, softmax_ce, elementwise, adamw, embedding, router, router_grad,
#     routing and gather_scatter (.cu), the CPU twins of kernels/cpu as the reference.
#   tests/gpu/emu/run.sh --step [gtest filter]
#     the whole device step (src/cuda) on every kernel of kernels/cuda and the cuBLAS stand-in of
#     include/cublas_v2.h, and the NCCL communicator on the NCCL stand-in of include/nccl.h (ranks
#     are threads): test_gpu_train_step.cpp, test_gpu_parallel_step.cpp, test_gpu_nccl.cpp,
#     test_gpu_nccl_ranks.cpp, test_gpu_decoder.cpp, test_gpu_matmul.cpp and
#     test_gpu_attention.cpp against the CPU model and twins (under a minute, most of it compiling).
#   tests/gpu/emu/run.sh --flash [gtest filter]
#     tests/gpu/test_gpu_flash_attention.cpp against flash_attention.cu (forward and backward),
#     its tensor-core PTX emulated by include/kernels/cuda/mma_ptx.cuh; the reference is the CPU
#     attention of kernels/cpu (OpenBLAS); and test_emu_ptx.cpp, the emulated PTX against the PTX ISA
#     ('EmuPtx*', seconds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mode=permute
if [[ "${1:-}" == --flash || "${1:-}" == --rows || "${1:-}" == --permute || "${1:-}" == --step ]]; then
  mode=${1#--}
  shift
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case $mode in
  flash) kernels=flash_attention ;;
  rows) kernels="rmsnorm rope convert softmax_ce elementwise adamw embedding router router_grad routing gather_scatter" ;;
  # all but CUB's radix sort (permute_paths.cpp), the cuBLAS handles and the device query (stand-ins)
  step) kernels=$(cd "$root/kernels/cuda" && ls *.cu | grep -vxE 'permute.cu|context.cu|device_query.cu' | sed 's/\.cu$//') ;;
  *) kernels="permute_counting gather_scatter combine expert_layout" ;;
esac
python3 - "$root" "$work" $kernels <<'PY'
import re, sys
root, work = sys.argv[1], sys.argv[2]
for name in sys.argv[3:]:
    s = open(f"{root}/kernels/cuda/{name}.cu").read()
    # (the emulated dynamic shared memory is 16-byte aligned: what cp.async and ldmatrix need)
    s = re.sub(r"extern __shared__ (?:__align__\(\d+\) )?(\w+(?: \w+)?) (\w+)\[\];",
               r"\1* \2 = emu::dyn_smem<\1>();", s)
    s = re.sub(r"([\w:]+(?:<[^<>;]*>)?)\s*<<<(.*?)>>>\(",
               lambda m: f"emu::launch(emu::config({m.group(2)}), {m.group(1)}, ", s, flags=re.S)
    s = s.replace("__restrict__", "")
    if "<<<" in s or "extern __shared__" in s or re.search(r"\basm\b", re.sub(r"//.*", "", s)):
        sys.exit(f"emu/run.sh: {name}.cu has a construct the rewrite does not handle")
    open(f"{work}/{name}.cpp", "w").write(s)
PY
flags=(-std=c++20 -O1 -Wno-unknown-pragmas -DMOE_GPU_EMULATION -I"$here/include" -I"$root")
if [[ $mode == step ]]; then
  # the NCCL communicator itself, on the NCCL stand-in (emu_nccl.cpp: ranks are threads)
  cp "$root/src/comm/cuda/nccl_communicator.cu" "$work/nccl_communicator.cpp"
  sources=("$work"/*.cpp "$here/emu_cublas.cpp" "$here/emu_nccl.cpp" "$here/permute_paths.cpp"
    "$root"/src/cuda/{device_model,device_step,device_step_ep,device_train_step,device_grad_sync,device_optimizer,device_zero_adamw,device_adamw,device_decoder,phase_marks}.cpp
    "$root"/src/parallel/{grad_buckets,zero,zero_optimizer}.cpp
    "$root"/src/model/*.cpp "$root"/moe/*.cpp "$root"/kernels/cpu/*.cpp
    "$root"/src/core/{error,philox,strformat,page_memory}.cpp "$root/src/parallel/tensor_parallel.cpp"
    "$root"/src/comm/{communicator,thread_communicator}.cpp "$root"/src/train/{optimizer,flops,lr_schedule,generate,precision_weights,micro_batches}.cpp
    "$root"/tests/gpu/test_gpu_{train_step,parallel_step,nccl,nccl_ranks,decoder,matmul,attention}.cpp)
  mkdir "$work/obj"
  # one object per source, two compilers at a time; names keep their directory so none collide
  printf '%s\n' "${sources[@]}" | xargs -P "${JOBS:-2}" -I{} sh -c \
    'w=$1 src=$2; shift 2; g++ "$@" -c "$src" -o "$w/obj/$(echo "$src" | tr / _).o"' _ "$work" {} "${flags[@]}"
  g++ "$work"/obj/*.o -o "$work/emu_tests" -lopenblas -lgtest -lgtest_main -pthread
elif [[ $mode == rows ]]; then
  g++ "${flags[@]}" "$work"/{rmsnorm,rope,convert,softmax_ce,elementwise,adamw,embedding,router,router_grad,routing}.cpp \
    "$work/gather_scatter.cpp" "$root"/tests/gpu/test_gpu_{first_writers,elementwise,softmax_ce,adamw,routing,router_grad}.cpp \
    "$root"/kernels/cpu/*.cpp "$root/src/core/error.cpp" \
    -o "$work/emu_tests" -lopenblas -lgtest -lgtest_main -pthread
elif [[ $mode == flash ]]; then
  g++ "${flags[@]}" "$work/flash_attention.cpp" "$root/tests/gpu/test_gpu_flash_attention.cpp" "$here/test_emu_ptx.cpp" \
    "$root/kernels/cpu/attention.cpp" "$root/kernels/cpu/attention_bf16.cpp" "$root/kernels/cpu/gemm_bf16.cpp" \
    "$root/kernels/cpu/half.cpp" "$root/src/core/error.cpp" \
    -o "$work/emu_tests" -lopenblas -lgtest -lgtest_main -pthread
else
  g++ "${flags[@]}" "$work/permute_counting.cpp" "$work/gather_scatter.cpp" "$work/combine.cpp" \
    "$work/expert_layout.cpp" "$here/permute_paths.cpp" "$root/kernels/cpu/routing.cpp" \
    "$root/src/core/error.cpp" "$root/moe/expert_padding.cpp" "$root/tests/gpu/test_gpu_permute.cpp" \
    "$root/tests/gpu/test_gpu_gather_scatter.cpp" "$root/tests/gpu/test_gpu_combine.cpp" \
    -o "$work/emu_tests" -lgtest -lgtest_main -pthread
fi
"$work/emu_tests" --gtest_filter="${1:-*}"
