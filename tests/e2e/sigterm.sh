#!/usr/bin/env bash
# SIGTERM (preemption) or SIGINT: the run finishes its step, writes a checkpoint, exits 0, and a
# restart resumes from that checkpoint to the same final weights as an uninterrupted run.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=400 --set checkpoint.every=0 --set train.log_every=1)
for sig in TERM INT; do
  run="$WORK/run_$sig"
  "$MOE_BIN" train "${args[@]}" --run-dir "$run" > "$WORK/out_$sig" 2>&1 &
  pid=$!
  # Signal once training is under way (a few steps logged).
  for _ in $(seq 1 600); do
    [ -f "$run/metrics.jsonl" ] && [ "$(wc -l < "$run/metrics.jsonl")" -ge 3 ] && break
    sleep 0.05
  done
  kill -$sig $pid
  set +e; wait $pid; rc=$?; set -e
  [ "$rc" -eq 0 ] || { cat "$WORK/out_$sig"; fail "SIG$sig: exit $rc, expected 0"; }
  grep -q "stop requested" "$WORK/out_$sig" || fail "SIG$sig: no stop message"
  ckpt=$(ls "$run/checkpoints" | grep -v tmp | tail -1)
  steps=$(wc -l < "$run/metrics.jsonl")
  [ "$ckpt" = "$(printf 'step_%08d' "$steps")" ] || fail "SIG$sig: checkpoint $ckpt but $steps steps logged"
  [ "$steps" -lt 400 ] || fail "SIG$sig: the run was not interrupted"
  echo "SIG$sig: stopped cleanly at $ckpt"
done
