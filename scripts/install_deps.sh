#!/usr/bin/env bash
# Installs the Debian 12 packages moe needs, only those missing (idempotent, quick when done).
# Extra package names on the command line are installed too: optional ones, e.g. python3-torch
# (large; only scripts/bench_cpu.sh asks for it, for the PyTorch reference).
set -euo pipefail
pkgs=(build-essential cmake git pkg-config libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libcli11-dev
      libopenblas-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev fortunes fortunes-min
      python3 python3-h5py python3-numpy chromium "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
