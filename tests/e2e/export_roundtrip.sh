#!/usr/bin/env bash
# moe export: checkpoint -> safetensors -> hdf5 -> safetensors is bit-exact; the safetensors file
# reads back with the `safetensors` Python package (a small numpy reader when it is absent) and
# holds the DESIGN.md names and shapes; an exported file is a valid --from for eval.
source "$(dirname "$0")/../lib/common.sh"
prepare_fortunes
args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --quiet --set data.path="$WORK/fortunes"
      --set train.steps=3 --set train.batch_size=4 --set checkpoint.resume=never)
"$MOE_BIN" train "${args[@]}" --run-dir "$WORK/run"
"$MOE_BIN" export --from "$WORK/run" --format safetensors --out "$WORK/a.safetensors" >/dev/null
"$MOE_BIN" export --from "$WORK/a.safetensors" --format hdf5 --out "$WORK/b.h5" >/dev/null
"$MOE_BIN" export --from "$WORK/b.h5" --format safetensors --out "$WORK/c.safetensors" >/dev/null
cmp "$WORK/a.safetensors" "$WORK/c.safetensors" || fail "export -> import -> export is not bit-exact"

# Names, shapes and values: the Python package (or a numpy reader) against h5py on the HDF5 export.
summary='import json, sys
def summary(tensors): return {k: [list(v.shape), float(v.astype("float64").sum())] for k, v in tensors.items()}'
reader=""
for py in python3 /usr/bin/python3; do
  if $py -c "import safetensors.numpy" 2>/dev/null; then reader=$py; break; fi
done
if [ -n "$reader" ]; then
  $reader -c "$summary
from safetensors.numpy import load_file
print(json.dumps(summary(load_file(sys.argv[1]))))" "$WORK/a.safetensors" >"$WORK/st.json"
else
  echo "SKIP: the safetensors Python package is not installed; checking with a numpy reader instead"
  /usr/bin/python3 -c "$summary
import numpy as np
raw = open(sys.argv[1], 'rb').read(); n = int.from_bytes(raw[:8], 'little'); h = json.loads(raw[8:8 + n])
h.pop('__metadata__', None)
t = {k: np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], '<f4').reshape(v['shape']) for k, v in h.items()}
print(json.dumps(summary(t)))" "$WORK/a.safetensors" >"$WORK/st.json"
fi
/usr/bin/python3 -c "$summary
import h5py
f = h5py.File(sys.argv[1], 'r')
assert 'model:' in f.attrs['moe_config'], 'the config rides along'
print(json.dumps(summary({k: f[k][()] for k in f.keys()})))" "$WORK/b.h5" >"$WORK/h5.json"
python3 - "$WORK/st.json" "$WORK/h5.json" <<'PY'
import json, sys
st, h5 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert st == h5, "safetensors and hdf5 exports differ"
assert st["tok_embeddings.weight"][0] == [260, 64], st["tok_embeddings.weight"]
assert st["layers.1.moe.experts.w1"][0] == [4, 128, 64], st["layers.1.moe.experts.w1"]
assert st["layers.0.moe.experts.w2"][0] == [4, 64, 128]
assert st["layers.0.attention.wk.weight"][0] == [32, 64]
assert st["output.weight"][0] == [260, 64] and st["norm.weight"][0] == [64]
print(f"{len(st)} tensors agree")
PY

# An exported file is a --from like a checkpoint: the same validation loss to the last digit.
eval_args=(--config "$MOE_SOURCE_DIR/configs/tiny.yaml" --set data.path="$WORK/fortunes" --batches 2 --json)
"$MOE_BIN" eval "${eval_args[@]}" --from "$WORK/run" >"$WORK/eval_ckpt.json"
"$MOE_BIN" eval "${eval_args[@]}" --from "$WORK/b.h5" >"$WORK/eval_h5.json"
cmp "$WORK/eval_ckpt.json" "$WORK/eval_h5.json" || fail "eval from the export differs"

expect_exit 2 "$MOE_BIN" export --from "$WORK/run" --format onnx --out "$WORK/x.onnx"
expect_exit 3 "$MOE_BIN" export --from "$WORK/missing" --format hdf5 --out "$WORK/x.h5"
expect_exit 3 "$MOE_BIN" eval "${eval_args[@]}" --set model.d_model=32 --from "$WORK/a.safetensors"
grep -q "tok_embeddings.weight" "$WORK/stderr" && grep -q "a.safetensors" "$WORK/stderr" ||
  { cat "$WORK/stderr"; fail "the shape error does not name the tensor and the file"; }
