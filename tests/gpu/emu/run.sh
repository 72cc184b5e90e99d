#!/usr/bin/env bash
# Runs tests/gpu/test_gpu_permute.cpp and test_gpu_gather_scatter.cpp on the CPU against the real
# kernels of kernels/cuda/permute_counting.cu and gather_scatter.cu, through the host emulation in
# include/ (one thread per CUDA thread; see include/emu_runtime.h for what it cannot show). The
# kernel sources are copied with their launches (k<<<g, b, s, st>>>(args)) rewritten as
# emu::launch(...) calls and `extern __shared__` arrays as the emulated dynamic shared memory.
# The CUB radix path and the dispatching entry are stand-ins (permute_paths.cpp).
#   tests/gpu/emu/run.sh [gtest filter]        e.g. 'GpuGatherScatter*' (the full set takes minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$root" "$work" <<'PY'
import re, sys
root, work = sys.argv[1], sys.argv[2]
for name in ("permute_counting", "gather_scatter"):
    s = open(f"{root}/kernels/cuda/{name}.cu").read()
    s = re.sub(r"extern __shared__ (\w+) (\w+)\[\];", r"\1* \2 = emu::dyn_smem<\1>();", s)
    s = re.sub(r"([\w:]+(?:<[^<>;]*>)?)\s*<<<(.*?)>>>\(",
               lambda m: f"emu::launch(emu::config({m.group(2)}), {m.group(1)}, ", s, flags=re.S)
    s = s.replace("__restrict__", "")
    open(f"{work}/{name}.cpp", "w").write(s)
PY
g++ -std=c++20 -O1 -Wno-unknown-pragmas -I"$here/include" -I"$root" \
  "$work/permute_counting.cpp" "$work/gather_scatter.cpp" "$here/permute_paths.cpp" \
  "$root/kernels/cpu/routing.cpp" "$root/src/core/error.cpp" \
  "$root/tests/gpu/test_gpu_permute.cpp" "$root/tests/gpu/test_gpu_gather_scatter.cpp" \
  -o "$work/emu_tests" -lgtest -lgtest_main -pthread
"$work/emu_tests" --gtest_filter="${1:-*}"
