#!/usr/bin/env bash
# libFuzzer targets for the readers of untrusted input (tests/fuzz/*.cpp): the config parser and
# validation, the dataset manifest and HDF5 shard reader, the checkpoint manifest and rank-file
# reader. Builds with clang (-fsanitize=fuzzer,address,undefined) in build-fuzz/ (not part of the
# normal build), then runs each target for a bounded time from the seeds in tests/fuzz/corpus/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]    targets: config data checkpoint
# Prints executions and findings per target; exit 1 if any target found a crash (the input is
# left in build-fuzz/crash-<target>-*; rerun with: build-fuzz/fuzz_<target> FILE).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${MOE_FUZZ_BUILD:-$ROOT/build-fuzz}
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(config data checkpoint)
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }

CXXFLAGS=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -I"$ROOT" -I/usr/include/hdf5/serial)
LIBS=(-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lyaml-cpp -lpthread)
# The library sources each target needs (the readers and what they call).
declare -A SOURCES=(
  [config]="src/core/error.cpp src/train/config.cpp src/train/config_checks.cpp src/train/config_messages.cpp
            src/train/config_schema.cpp"
  [data]="src/core/error.cpp data/file_util.cpp data/hdf5_io.cpp data/manifest.cpp data/shard_set.cpp"
  [checkpoint]="src/core/error.cpp src/train/checkpoint.cpp src/train/checkpoint_fs.cpp src/train/checkpoint_h5.cpp"
)

mkdir -p "$OUT/obj"
compile() {  # source -> object, rebuilt when the source or any header is newer
  local src=$1 obj="$OUT/obj/${1//\//_}.o"
  if [ ! -f "$obj" ] || [ "$ROOT/$src" -nt "$obj" ] ||
     [ -n "$(find "$ROOT/src" "$ROOT/data" -name '*.h' -newer "$obj" | head -1)" ]; then
    clang++ "${CXXFLAGS[@]}" -fsanitize=fuzzer-no-link -c "$ROOT/$src" -o "$obj" >&2
  fi
  echo "$obj"
}

status=0
summary=()
for t in "${TARGETS[@]}"; do
  [ -n "${SOURCES[$t]:-}" ] || { echo "fuzz.sh: unknown target $t (config, data, checkpoint)" >&2; exit 2; }
  objs=()
  for s in ${SOURCES[$t]}; do objs+=("$(compile "$s")"); done
  clang++ "${CXXFLAGS[@]}" -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_$t.cpp" "${objs[@]}" "${LIBS[@]}" -o "$OUT/fuzz_$t"
  mkdir -p "$OUT/corpus/$t"
  log="$OUT/fuzz_$t.log"
  set +e
  (cd "$OUT" && ASAN_OPTIONS=allocator_may_return_null=1 LSAN_OPTIONS=suppressions="$ROOT/tests/fuzz/lsan.supp" HDF5_USE_FILE_LOCKING=FALSE ./fuzz_$t "corpus/$t" "$ROOT/tests/fuzz/corpus/$t" -max_total_time="$SECS" \
     -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="crash-$t-" >"$log" 2>&1)
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ $rc -eq 0 ]; then
    summary+=("$t: $execs executions in ${SECS} s, no crash")
  else
    status=1
    summary+=("$t: FINDING after $execs executions (exit $rc): see $log and $OUT/crash-$t-*")
    grep -m 20 -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$log" >&2 || true
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
