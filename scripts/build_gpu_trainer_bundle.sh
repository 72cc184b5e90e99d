#!/usr/bin/env bash
# Packs the `moe` binary of build/ (configured with CUDA) with the shared libraries and the Open MPI
# plugins it needs, and a prepared copy of the default corpus, into build-gpu-pack/trainer.tar.xz,
# for a GPU machine that has the NVIDIA driver, cuBLAS and NCCL but no MPI, HDF5 or yaml-cpp.
# scripts/gpu_train_check.sh unpacks and runs it there (one process: an Open MPI singleton in
# isolated mode, which needs no daemon).
#   cmake --build build -j2 --target moe && scripts/build_gpu_trainer_bundle.sh
#   run(command="bash scripts/gpu_train_check.sh", carry=["build-gpu-pack"])
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOE_BIN:-$root/build/moe}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
out=$stage/trainer
mkdir -p "$out/bin" "$out/lib" "$out/ompi"
cp "$bin" "$out/bin/moe"
strip "$out/bin/moe"
ompi_plugins=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
cp -r "$ompi_plugins" "$out/ompi/openmpi3"
cp -r /usr/share/openmpi "$out/ompi/share"
cp -r /etc/openmpi "$out/ompi/etc"
# Every library the binary and the plugins load, except the C runtime and the CUDA libraries the
# GPU machine brings (cuBLAS, NCCL, the driver).
skip='^(linux-vdso|ld-linux-x86-64|libc|libm|libpthread|libdl|librt|libcuda|libcublas|libcublasLt|libnccl)\.so'
for f in "$out/bin/moe" "$ompi_plugins"/*.so; do
  ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $skip ]] || cp -L "$lib" "$out/lib/$name"
done
"$bin" data prepare --input /usr/share/games/fortunes --output "$out/fortunes" >/dev/null
mkdir -p "$root/build-gpu-pack"
tar -C "$stage" -cJf "$root/build-gpu-pack/trainer.tar.xz" trainer
du -sh "$root/build-gpu-pack/trainer.tar.xz"
