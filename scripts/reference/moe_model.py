"""The moe model in PyTorch, written from the numerics contract (docs/design.md "Model"):
RMSNorm, GQA causal attention with RoPE (rotate-half), SwiGLU experts, softmax router -> top-k ->
renormalise, Switch aux loss over the global batch, router z-loss. Parameter names and shapes
are moe's logical names, so a checkpoint's "param/<name>" datasets load one to one.

Supported: token-choice softmax routing ranked by probabilities, dropless (capacity_factor 0),
shared experts, dense layers (moe_every / first_dense_layers). Anything else is refused.
"""
import math

import h5py
import numpy as np
import torch
import torch.nn.functional as F


class Dims:
    def __init__(self, cfg):
        m, e = cfg["model"], cfg["moe"]
        self.V, self.D, self.L = m["vocab_size"], m["d_model"], m["n_layers"]
        self.H, self.KV, self.T = m["n_heads"], m["n_kv_heads"], m["seq_len"]
        self.hd = self.D // self.H
        self.F, self.eps, self.theta = m["ffn_hidden"], m["norm_eps"], m["rope_theta"]
        self.moe_every, self.first_dense = m["moe_every"], m.get("first_dense_layers", 0)
        self.E, self.K, self.Fe = e["num_experts"], e["top_k"], e["expert_hidden"]
        self.Fs = e["num_shared_experts"] * self.Fe
        self.norm_topk, self.scale = e["norm_topk_prob"], e.get("router_scale", 1.0)
        self.aux_coeff, self.z_coeff = e["aux_loss_coeff"], e["z_loss_coeff"]
        refuse = {"router": ("softmax",), "score_order": ("softmax_then_topk",), "aux_loss_type": ("switch",)}
        for key, allowed in refuse.items():
            if e.get(key, allowed[0]) not in allowed:
                raise SystemExit(f"reference: moe.{key}={e[key]} is not implemented (only {allowed[0]})")
        for key in ("capacity_factor", "router_jitter"):
            if e.get(key, 0):
                raise SystemExit(f"reference: moe.{key}={e[key]} is not implemented (only 0)")
        if e.get("num_groups", 1) > 1 and e.get("topk_groups", 1) < e["num_groups"]:
            raise SystemExit("reference: group-limited routing (moe.num_groups) is not implemented")

    def is_moe(self, i):
        return self.moe_every > 0 and i >= self.first_dense and (i + 1) % self.moe_every == 0


def param_shapes(d):
    """Logical name -> shape, in moe's order (src/model/params.cpp), and whether AdamW decays it."""
    out = [("tok_embeddings.weight", (d.V, d.D), True)]
    for i in range(d.L):
        p = f"layers.{i}."
        out += [(p + "attention_norm.weight", (d.D,), False), (p + "attention.wq.weight", (d.H * d.hd, d.D), True),
                (p + "attention.wk.weight", (d.KV * d.hd, d.D), True),
                (p + "attention.wv.weight", (d.KV * d.hd, d.D), True),
                (p + "attention.wo.weight", (d.D, d.H * d.hd), True), (p + "ffn_norm.weight", (d.D,), False)]
        if not d.is_moe(i):
            out += [(p + "feed_forward.w1.weight", (d.F, d.D), True), (p + "feed_forward.w3.weight", (d.F, d.D), True),
                    (p + "feed_forward.w2.weight", (d.D, d.F), True)]
            continue
        out += [(p + "moe.router.weight", (d.E, d.D), True), (p + "moe.experts.w1", (d.E, d.Fe, d.D), True),
                (p + "moe.experts.w3", (d.E, d.Fe, d.D), True), (p + "moe.experts.w2", (d.E, d.D, d.Fe), True)]
        if d.Fs > 0:
            out += [(p + "moe.shared.w1.weight", (d.Fs, d.D), True), (p + "moe.shared.w3.weight", (d.Fs, d.D), True),
                    (p + "moe.shared.w2.weight", (d.D, d.Fs), True)]
    return out + [("norm.weight", (d.D,), False), ("output.weight", (d.V, d.D), True)]


def init_params(d, seed):
    """N(0, 0.02) weights, ones for norms (torch's RNG: for benchmarks, not moe's Philox init)."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape, decay in param_shapes(d):
        params[name] = torch.ones(shape) if not decay else torch.randn(shape, generator=g) * 0.02
    return params


def load_params(d, rank_file, group="param"):
    """The tensors of one rank file of a single-rank checkpoint (docs/checkpoint-format.md)."""
    out = {}
    with h5py.File(rank_file, "r") as f:
        for name, shape, _ in param_shapes(d):
            t = torch.from_numpy(np.array(f[f"{group}/{name}"], dtype=np.float32))
            if tuple(t.shape) != shape:
                raise SystemExit(f"{rank_file}: {group}/{name} has shape {tuple(t.shape)}, expected {shape}")
            out[name] = t
        bias = {}
        for i in range(d.L):
            key = f"{group}/layers.{i}.moe.router.bias"
            if d.is_moe(i) and key in f:
                bias[i] = torch.from_numpy(np.array(f[key], dtype=np.float32))
    return out, bias


def rope_tables(T, hd, theta):
    """cos/sin [T, hd/2], angles in double then cast, as kernels/cpu/rope.cpp."""
    inv = theta ** (-2.0 * np.arange(hd // 2, dtype=np.float64) / hd)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    return torch.from_numpy(np.cos(ang).astype(np.float32)), torch.from_numpy(np.sin(ang).astype(np.float32))


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):  # x [B, T, heads, hd]
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1)


def attention(xn, P, p, d, cos, sin, mask):
    B, T = xn.shape[0], xn.shape[1]
    q = (xn @ P[p + "attention.wq.weight"].t()).view(B, T, d.H, d.hd)
    k = (xn @ P[p + "attention.wk.weight"].t()).view(B, T, d.KV, d.hd)
    v = (xn @ P[p + "attention.wv.weight"].t()).view(B, T, d.KV, d.hd)
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    group = d.H // d.KV  # query head h reads kv head h // group
    q, k, v = q.transpose(1, 2), k.transpose(1, 2).repeat_interleave(group, 1), v.transpose(1, 2).repeat_interleave(group, 1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(d.hd)
    # Softmax in fp32 (a no-op in fp32; under bf16 autocast the scores come back in bf16).
    y = torch.softmax(s.float().masked_fill(mask, float("-inf")), dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, d.H * d.hd) @ P[p + "attention.wo.weight"].t()


def swiglu(x, w1, w3, w2):
    return (F.silu(x @ w1.t()) * (x @ w3.t())) @ w2.t()


def moe_ffn(x, P, p, d, bias):
    """Returns (y, aux, z) for x [N, D]: the routed (and shared) experts and the router losses."""
    N = x.shape[0]
    with torch.autocast("cpu", enabled=False):  # the router stays fp32 under mixed precision, as in moe
        logits = x.float() @ P[p + "moe.router.weight"].t()
    probs = torch.softmax(logits, dim=-1)
    select = probs.detach() + bias if bias is not None else probs.detach()
    idx = torch.topk(select, d.K, dim=-1).indices
    w = probs.gather(1, idx)
    if d.norm_topk:
        w = w / w.sum(-1, keepdim=True)
    w = w * d.scale
    y = torch.zeros_like(x)
    w1, w3, w2 = P[p + "moe.experts.w1"], P[p + "moe.experts.w3"], P[p + "moe.experts.w2"]
    flat_idx = idx.reshape(-1)
    order = torch.argsort(flat_idx, stable=True)  # assignments grouped by expert, token order inside
    counts = torch.bincount(flat_idx, minlength=d.E)
    tok = order // d.K
    start = 0
    for e, c in enumerate(counts.tolist()):
        if c == 0:
            continue
        rows, sel = tok[start:start + c], order[start:start + c]
        out = swiglu(x[rows], w1[e], w3[e], w2[e]) * w.reshape(-1)[sel].unsqueeze(1)
        y = y.index_add(0, rows, out)
        start += c
    if d.Fs > 0:
        y = y + swiglu(x, P[p + "moe.shared.w1.weight"], P[p + "moe.shared.w3.weight"], P[p + "moe.shared.w2.weight"])
    f = counts.to(probs.dtype) / (N * d.K)  # a count carries no gradient
    aux = d.aux_coeff * d.E * (f * probs.mean(0)).sum()
    z = d.z_coeff * torch.logsumexp(logits, dim=-1).pow(2).mean()
    return y, aux, z


def forward(P, biases, tokens, d):
    """tokens [B, T+1] (int64) -> (lm_loss, aux_sum, z_sum); lm is the mean token cross-entropy."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    B, T = inputs.shape
    cos, sin = rope_tables(T, d.hd, d.theta)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    h = P["tok_embeddings.weight"][inputs]
    aux = z = torch.zeros(())
    for i in range(d.L):
        p = f"layers.{i}."
        h = h + attention(rmsnorm(h, P[p + "attention_norm.weight"], d.eps), P, p, d, cos, sin, mask)
        xn = rmsnorm(h, P[p + "ffn_norm.weight"], d.eps)
        if d.is_moe(i):
            y, a, zz = moe_ffn(xn.reshape(B * T, d.D), P, p, d, biases.get(i))
            h = h + y.view(B, T, d.D)
            aux, z = aux + a, z + zz
        else:
            h = h + swiglu(xn, P[p + "feed_forward.w1.weight"], P[p + "feed_forward.w3.weight"],
                           P[p + "feed_forward.w2.weight"])
    logits = rmsnorm(h, P["norm.weight"], d.eps) @ P["output.weight"].t()
    lm = F.cross_entropy(logits.float().reshape(B * T, d.V), targets.reshape(-1))  # fp32 under autocast too
    return lm, aux, z
