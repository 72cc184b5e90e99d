#!/usr/bin/env bash
# Builds build-gpu/: moe_gpu_tests and bench_gpu_ops linked self-contained (static CUDA runtime,
# OpenBLAS, gfortran, GoogleTest, libstdc++) plus gpu_check.sh, for a machine that has a GPU and
# its driver but no MPI, HDF5, yaml-cpp, OpenBLAS or GoogleTest. cuBLAS/cuBLASLt and NCCL stay shared
# libraries (the toolkit ships neither statically); gpu_check.sh finds them on the device machine
# (PyTorch's nvidia-* wheels there hold both).
# The binaries are large (static OpenBLAS): build-gpu-pack/bundle.tar.xz holds them compressed for
# the trip (the device tool carries at most 64 MiB).
#   scripts/build_gpu_bundle.sh        then, through the device tool:
#   run(command="tar xJf build-gpu-pack/bundle.tar.xz && bash build-gpu/gpu_check.sh", carry=["build-gpu-pack"])
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
obj=${GPU_BUNDLE_OBJ_DIR:-$root/build-gpu-obj}
out=$root/build-gpu
cmake -S "$root" -B "$obj" -DMOE_CUDA=ON -DMOE_GPU_BUNDLE=ON -DMOE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$obj" -j"${JOBS:-2}" --target moe_gpu_tests bench_gpu_ops bench_gpu_train
rm -rf "$out"
mkdir -p "$out"
for bin in moe_gpu_tests bench_gpu_ops bench_gpu_train; do
  cp "$obj/tests/gpu/$bin" "$out/$bin"
  strip "$out/$bin"
done
cp "$root/scripts/gpu_check.sh" "$out/gpu_check.sh"

# Every shared library the binaries need must be a base system library, cuBLAS or NCCL (libnccl
# brings libstdc++.so.6, which every machine with PyTorch has; ours is linked statically).
allowed='^(linux-vdso|ld-linux-x86-64|libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+|libcublas|libcublasLt|libnccl)\.so'
status=0
for bin in "$out/moe_gpu_tests" "$out/bench_gpu_ops" "$out/bench_gpu_train"; do
  while read -r lib; do
    if ! [[ $lib =~ $allowed ]]; then
      echo "build_gpu_bundle: $bin needs $lib, which the device machine may lack" >&2
      status=1
    fi
  done < <(ldd "$bin" | awk '{print $1}' | xargs -n1 basename)
done
[ $status -eq 0 ] || exit $status
mkdir -p "$root/build-gpu-pack"
tar -C "$root" -cJf "$root/build-gpu-pack/bundle.tar.xz" build-gpu
du -sh "$out" "$root/build-gpu-pack/bundle.tar.xz"
echo "build_gpu_bundle: ready in $out (dependencies: $(ldd "$out/moe_gpu_tests" | awk '{print $1}' | xargs -n1 basename | tr '\n' ' '))"
