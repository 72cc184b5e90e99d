#!/usr/bin/env bash
# `moe data prepare` / `moe data inspect` through the CLI: exit codes 0 and 3, and shards that
# h5py reads back as the original text.
set -euo pipefail
: "${MOE_BIN:?MOE_BIN must point at the moe executable}"
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A small corpus: a fortune-style file, a plain file in a subfolder, a binary file and a symlink.
mkdir -p "$work/in/sub"
for i in $(seq 1 200); do printf 'fortune %d: the experts agree\n%%\n' "$i"; done > "$work/in/fortunes"
printf 'one whole document\nin two lines\n' > "$work/in/sub/plain.txt"
printf 'idx\0\1\2' > "$work/in/fortunes.dat"
ln -s fortunes "$work/in/fortunes.u8"

expect_rc() {  # expect_rc CODE NAME CMD...
  local want=$1 name=$2; shift 2
  set +e; "$@" >"$work/out.txt" 2>"$work/err.txt"; local rc=$?; set -e
  if [[ $rc -ne $want ]]; then
    echo "FAIL: $name: exit $rc, expected $want"; cat "$work/out.txt" "$work/err.txt"; exit 1
  fi
}

expect_rc 0 "prepare" "$MOE_BIN" data prepare --input "$work/in" --output "$work/ds" --shard-tokens 2000
grep -q "201 documents" "$work/out.txt" || { echo "FAIL: expected 201 documents"; cat "$work/out.txt"; exit 1; }
expect_rc 0 "inspect" "$MOE_BIN" data inspect "$work/ds"
grep -q "fortune" "$work/out.txt" || { echo "FAIL: inspect shows no decoded sample"; cat "$work/out.txt"; exit 1; }

# The shards, read with h5py in manifest order, give back every document followed by <eos>.
"$PY" - "$work/ds" "$work/in" <<'PYEOF'
import json, sys, h5py, numpy as np
ds, src = sys.argv[1], sys.argv[2]
m = json.load(open(f"{ds}/manifest.json"))
assert m["vocab_size"] == 257 and m["dtype"] == "uint16", m
docs = []
for split in ("train", "valid"):
    for sh in m["splits"][split]["shards"]:
        with h5py.File(f"{ds}/{sh['file']}", "r") as f:
            t = f["tokens"][:]
            assert t.dtype == np.uint16 and len(t) == sh["tokens"], sh
            assert len(f["doc_offsets"]) == sh["documents"]
            assert f.attrs["vocab_size"] == 257 and f.attrs["tokenizer"] == "byte"
            docs.append(t)
stream = np.concatenate(docs)
text = bytes(stream[stream != 256].astype(np.uint8)).decode()
n_eos = int((stream == 256).sum())
assert n_eos == 201, n_eos
for i in range(1, 201):
    assert f"fortune {i}: the experts agree" in text, i
assert "one whole document\nin two lines" in text
print("h5py check ok:", len(stream), "tokens")
PYEOF

expect_rc 3 "missing input" "$MOE_BIN" data prepare --input "$work/nope" --output "$work/ds2"
grep -q "nope" "$work/err.txt" || { echo "FAIL: error does not name the missing input"; cat "$work/err.txt"; exit 1; }
expect_rc 3 "inspect missing" "$MOE_BIN" data inspect "$work/nope"

# Flip one byte near the end of the first train shard: inspect must refuse and name it.
"$PY" - "$work/ds/train-00000.h5" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read()); b[-5] ^= 0x20; open(p, "wb").write(bytes(b))
PYEOF
expect_rc 3 "corrupted shard" "$MOE_BIN" data inspect "$work/ds"
grep -q "train-00000.h5" "$work/err.txt" || { echo "FAIL: error does not name the shard"; cat "$work/err.txt"; exit 1; }

expect_rc 2 "bad tokenizer flag" "$MOE_BIN" data prepare --input "$work/in" --output "$work/ds3" --tokenizer words
echo "data_prepare: ok"
