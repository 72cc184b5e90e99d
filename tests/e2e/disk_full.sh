#!/usr/bin/env bash
# A full or unwritable run directory on a real filesystem (a small tmpfs, mounted as root): a clear
# error naming the file, exit 3, and the previous checkpoint intact and loadable. Covers the
# config.yaml write, the metrics.jsonl write and the checkpoint write. Without the privilege to
# mount, the same cases run under `ulimit -f` (the file-size cap makes writes fail with EFBIG).
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
mnt="$WORK/mnt"
mkdir -p "$mnt"
if mount -t tmpfs -o size=8m tmpfs "$mnt" 2>/dev/null; then
  trap 'umount "$mnt" 2>/dev/null || umount -l "$mnt"; rm -rf "$WORK"' EXIT
  mode=tmpfs
else
  mode=ulimit
fi
run="$mnt/run"
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set checkpoint.every=2 --set train.log_every=1 --set profile.load_balance=false)
# train MAX_KB [args...]: the run, with file writes capped at MAX_KB in ulimit mode.
train() {
  local cap=$1; shift
  if [ "$mode" = ulimit ] && [ "$cap" != none ]; then
    (trap '' XFSZ; ulimit -f "$cap"; exec "$MOE_BIN" train "$@")
  else
    "$MOE_BIN" train "$@"
  fi
}
# fill KB: leaves about KB kilobytes free on the tmpfs.
fill() {
  rm -f "$mnt/filler"
  dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null || true
  truncate -s "-$1K" "$mnt/filler"
}
ckpt_sums() { (cd "$run/checkpoints/step_00000002" && sha256sum ./*); }

args_run=(--run-dir "$run")
train none "${args[@]}" "${args_run[@]}" --set train.steps=2   # the good checkpoint: step 2
sums=$(ckpt_sums)

# 1. The config write: a full disk (tmpfs) or a 0-block file-size cap.
# (Fresh run folders: rewriting an existing file would reuse its own pages.)
if [ "$mode" = tmpfs ]; then fill 0; fi
expect_exit 3 train 0 "${args[@]}" --run-dir "$mnt/fresh1" --set train.steps=4
grep -q "cannot write $mnt/fresh1/config.yaml" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no config.yaml message"; }

# 2. The metrics write: room for config.yaml (one page) but not for the next metrics line (a
# per-file cap cannot tell the two files apart, so this case needs the tmpfs).
if [ "$mode" = tmpfs ]; then
  fill 4
  expect_exit 3 train none "${args[@]}" --run-dir "$mnt/fresh2" --set train.steps=4
  grep -q "cannot write metrics.jsonl" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no metrics message"; }
fi

# 3. The checkpoint write: room for metrics but not for a second 3 MB checkpoint.
if [ "$mode" = tmpfs ]; then fill 512; cap=none; else cap=1024; fi
expect_exit 3 train "$cap" "${args[@]}" "${args_run[@]}" --set train.steps=4
grep -q "checkpoint" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no checkpoint message"; }
echo "checkpoint write on a full disk: $(cat "$WORK/stderr")"
[ "$(ls "$run/checkpoints" | grep -c '^step_[0-9]*$')" -eq 1 ] || fail "checkpoints: $(ls "$run/checkpoints")"
[ "$(ckpt_sums)" = "$sums" ] || fail "the step 2 checkpoint changed"

# 4. An unwritable (read-only) run directory.
if [ "$mode" = tmpfs ]; then
  rm -f "$mnt/filler"
  mount -o remount,ro "$mnt"
  expect_exit 3 train none "${args[@]}" --set train.steps=4 --run-dir "$mnt/other"
  grep -q "cannot create the run directory $mnt/other" "$WORK/stderr" || { cat "$WORK/stderr"; fail "no run-dir message"; }
  mount -o remount,rw "$mnt"
fi

# The kept checkpoint loads, and with room again the run resumes from it and finishes.
rm -f "$mnt/filler"
"$MOE_BIN" eval --config "$MOE_SOURCE_DIR/configs/tiny.yaml" --set data.path="$WORK/fortunes" \
  --from "$run/checkpoints/step_00000002" --batches 1 --json >/dev/null
train none "${args[@]}" "${args_run[@]}" --set train.steps=4 > "$WORK/resume.out"
[ -d "$run/checkpoints/step_00000004" ] || fail "no step 4 checkpoint after freeing space"
echo "disk full / unwritable ($mode): exit 3 with the file named; step 2 checkpoint intact"
