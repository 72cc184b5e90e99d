"""Token batches exactly as moe reads them (docs/data-format.md "Batches" and "Evaluation").

Train: the train shards concatenated in manifest order, cut into N = (tokens - 1) // T windows of
T + 1 tokens; global sequence g = s*B + i is window perm_e[g % N], e = g // N, with perm_e the
Philox-driven Fisher-Yates shuffle of src/core/philox.cpp and data/loader.cpp.
Eval: sequence j is valid[j*T : j*T + T + 1], unshuffled.
"""
import json
import os

import h5py
import numpy as np

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


def rng_key(seed, name):
    """64-bit FNV-1a of the name, mixed with the seed (src/core/philox.cpp rng_key)."""
    h = 1469598103934665603
    for c in name.encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h ^ ((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)


def philox4x32(key, counter_hi, counter_lo):
    """Philox4x32-10 on arrays of counters (uint64 numpy arrays or ints); returns v0..v3."""
    lo = np.asarray(counter_lo, dtype=np.uint64)
    hi = np.broadcast_to(np.asarray(counter_hi, dtype=np.uint64), lo.shape)
    m32 = np.uint64(_MASK32)
    c0, c1 = lo & m32, lo >> np.uint64(32)
    c2, c3 = hi & m32, hi >> np.uint64(32)
    k0, k1 = key & _MASK32, key >> 32
    for _ in range(10):
        p0 = np.uint64(_M0) * c0
        p1 = np.uint64(_M1) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & m32
        hi1, lo1 = p1 >> np.uint64(32), p1 & m32
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def epoch_permutation(seed, epoch, n):
    """Fisher-Yates over [0, n): for i = n-1 down to 1, j = ((v0 << 32) | v1) % (i + 1)."""
    perm = list(range(n))
    if n < 2:
        return perm
    idx = np.arange(n - 1, 0, -1, dtype=np.uint64)
    v0, v1, _, _ = philox4x32(rng_key(seed, "data.shuffle"), epoch, idx)
    r = (v0 << np.uint64(32)) | v1
    js = (r % (idx + np.uint64(1))).tolist()
    for i, j in zip(idx.tolist(), js):
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def read_split(path, split):
    """All tokens of one split, the shards concatenated in manifest order, as int64."""
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    parts = []
    for shard in manifest["splits"][split]["shards"]:
        with h5py.File(os.path.join(path, shard["file"]), "r") as f:
            parts.append(f["tokens"][:].astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def eval_batches(path, T, B, batches):
    """The first `batches` eval batches, [batches, B, T+1]; fewer when the split is short."""
    valid = read_split(path, "valid")
    n_seq = max(0, (len(valid) - 1) // T)
    n = min(batches, n_seq // B)
    if n == 0:
        raise SystemExit(f"{path}: the valid split has {n_seq} sequences of {T + 1} tokens, "
                         f"fewer than one batch of {B}")
    return np.stack([np.stack([valid[(b * B + i) * T:(b * B + i) * T + T + 1] for i in range(B)])
                     for b in range(n)])


class TrainBatches:
    """The global batch of any training step, [B, T+1], as moe's ShardedLoader hands it out."""

    def __init__(self, path, T, B, seed):
        self.stream = read_split(path, "train")
        self.T, self.B, self.seed = T, B, seed
        self.windows = (len(self.stream) - 1) // T
        self.perms = {}

    def batch(self, step):
        rows = []
        for g in range(step * self.B, (step + 1) * self.B):
            e = g // self.windows
            if e not in self.perms:
                self.perms[e] = epoch_permutation(self.seed, e, self.windows)
            w = self.perms[e][g % self.windows]
            rows.append(self.stream[w * self.T:w * self.T + self.T + 1])
        return np.stack(rows)
