#!/usr/bin/env bash
# The built-in default corpus: every text file of Debian's fortunes packages, byte-tokenized into
# datasets/fortunes (what configs/tiny.yaml trains on). Skipped when already prepared.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
moe=${MOE_BIN:-$root/build/moe}
out=${1:-$root/datasets/fortunes}
if [ -f "$out/manifest.json" ]; then
  exit 0
fi
"$moe" data prepare --input /usr/share/games/fortunes --output "$out" --tokenizer byte
