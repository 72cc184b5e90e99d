#!/usr/bin/python3
"""PyTorch reference of moe's model and training step (numerics contract: docs/design.md "Model").

  moe_ref.py eval  --from CKPT [--batches N]             loss of `moe eval --json` on the same weights
  moe_ref.py step  --from CKPT [--compare CKPT2]         the next training step: loss, grad norm, and
                 [--precision fp32|bf16]                 (with --compare) how far AdamW's update lands
                                                          from the parameters moe saved after that step
  moe_ref.py bench --config RESOLVED.yaml [--steps S]    tokens/s of the same training step, torch init
                 [--precision fp32|bf16]                 bf16: torch.autocast("cpu", bfloat16) around the
                                                          forward; fp32 master weights, grads and AdamW

CKPT: a checkpoint folder (step_N/) or a run directory (its latest checkpoint), single rank. The
config comes from the checkpoint's manifest (meta.config) unless --config is given; --data
replaces data.path. Needs python3-torch, h5py, numpy, yaml (Debian: /usr/bin/python3).
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_data  # noqa: E402
import moe_model  # noqa: E402


def resolve_checkpoint(path):
    """A step folder with manifest.json, or a run directory / checkpoints root: its latest."""
    if os.path.isfile(os.path.join(path, "manifest.json")):
        return path
    root = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
    steps = sorted(n for n in os.listdir(root) if n.startswith("step_") and len(n) == 13 and
                   os.path.isfile(os.path.join(root, n, "manifest.json")))
    if not steps:
        raise SystemExit(f"{path}: no complete checkpoint (step_NNNNNNNN/manifest.json)")
    return os.path.join(root, steps[-1])


def load_config(args, manifest):
    cfg = yaml.safe_load(open(args.config)) if args.config else yaml.safe_load(manifest["meta"]["config"])
    if args.data:
        cfg["data"]["path"] = args.data
    return cfg


def open_checkpoint(args):
    ckpt = resolve_checkpoint(args.from_)
    manifest = json.load(open(os.path.join(ckpt, "manifest.json")))
    if manifest["world"] != 1:
        raise SystemExit(f"{ckpt}: written by {manifest['world']} ranks; the reference reads single-rank checkpoints")
    cfg = load_config(args, manifest)
    d = moe_model.Dims(cfg)
    params, biases = moe_model.load_params(d, os.path.join(ckpt, "rank_00000.h5"))
    return ckpt, manifest, cfg, d, params, biases


def cmd_eval(args):
    _, _, cfg, d, params, biases = open_checkpoint(args)
    batches = moe_data.eval_batches(cfg["data"]["path"], d.T, cfg["train"]["batch_size"], args.batches)
    total = 0.0
    with torch.no_grad():
        for b in batches:
            total += moe_model.forward(params, biases, torch.from_numpy(b), d)[0].item() * b.shape[0] * d.T
    tokens = batches.shape[0] * batches.shape[1] * d.T
    loss = total / tokens
    print(json.dumps({"loss": loss, "ppl": math.exp(loss), "tokens": tokens}))


def lr_at(step, cfg):
    """src/train/lr_schedule.cpp: linear warm-up, then cosine to min_lr."""
    o, total = cfg["optim"], cfg["train"]["steps"]
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    progress = min(1.0, (step - o["warmup_steps"]) / max(1, total - o["warmup_steps"]))
    return o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1.0 + math.cos(math.pi * progress))


class TrainStep:
    """One optimizer step of moe's trainer: loss, backward, global grad norm, clipping, AdamW."""

    def __init__(self, cfg, d, params, biases, precision="fp32"):
        self.cfg, self.d, self.biases = cfg, d, biases
        self.autocast = precision == "bf16"  # moe's train.precision bf16 contract (docs/precision.md)
        self.params = {n: t.clone().requires_grad_(True) for n, t in params.items()}
        decay = {n: dec for n, _, dec in moe_model.param_shapes(d)}
        o = cfg["optim"]
        groups = [{"params": [t for n, t in self.params.items() if decay[n]], "weight_decay": o["weight_decay"]},
                  {"params": [t for n, t in self.params.items() if not decay[n]], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])

    def load_adam_state(self, rank_file, steps_done):
        """moe's adam_m / adam_v and step count, so that the next update is moe's next update."""
        with h5py.File(rank_file, "r") as f:
            for n, t in self.params.items():
                self.opt.state[t] = {"step": torch.tensor(float(steps_done)),
                                     "exp_avg": torch.from_numpy(np.array(f["adam_m/" + n], dtype=np.float32)),
                                     "exp_avg_sq": torch.from_numpy(np.array(f["adam_v/" + n], dtype=np.float32))}

    def run(self, tokens, step):
        for t in self.params.values():
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            lm, aux, z = moe_model.forward(self.params, self.biases, torch.from_numpy(tokens), self.d)
        loss = lm + aux + z
        loss.backward()
        # The norm in double over every trainable tensor (the router bias is not a parameter here).
        gnorm = math.sqrt(sum(float(t.grad.double().pow(2).sum()) for t in self.params.values()))
        clip = self.cfg["optim"]["grad_clip"]
        if clip > 0 and gnorm > clip:
            for t in self.params.values():
                t.grad.mul_(clip / gnorm)
        lr = lr_at(step, self.cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.step()
        return {"loss": loss.item(), "lm_loss": lm.item(), "aux_loss": aux.item(), "z_loss": z.item(),
                "grad_norm": gnorm, "lr": lr}


def cmd_step(args):
    ckpt, manifest, cfg, d, params, biases = open_checkpoint(args)
    step = manifest["step"]
    ts = TrainStep(cfg, d, params, biases, args.precision)
    ts.load_adam_state(os.path.join(ckpt, "rank_00000.h5"), manifest["meta"]["optimizer_step"])
    loader = moe_data.TrainBatches(cfg["data"]["path"], d.T, cfg["train"]["batch_size"], cfg["train"]["seed"])
    out = {"step": step + 1, **ts.run(loader.batch(step), step)}
    if args.compare:
        after, _ = moe_model.load_params(d, os.path.join(resolve_checkpoint(args.compare), "rank_00000.h5"))
        diff = max(float((ts.params[n].detach() - after[n]).abs().max()) for n in after)
        moved = max(float((ts.params[n].detach() - params[n]).abs().max()) for n in after)
        out.update({"param_max_abs_diff": diff, "update_max_abs": moved})
    print(json.dumps(out))


def cmd_bench(args):
    cfg = yaml.safe_load(open(args.config))
    if args.data:
        cfg["data"]["path"] = args.data
    d = moe_model.Dims(cfg)
    torch.set_num_threads(args.threads)
    B = cfg["train"]["batch_size"]
    ts = TrainStep(cfg, d, moe_model.init_params(d, cfg["train"]["seed"]), {}, args.precision)
    loader = moe_data.TrainBatches(cfg["data"]["path"], d.T, B, cfg["train"]["seed"])
    times = []
    for s in range(args.warmup + args.steps):
        tokens = loader.batch(s)
        t0 = time.perf_counter()
        r = ts.run(tokens, s)
        times.append(time.perf_counter() - t0)
    timed = sorted(times[args.warmup:])
    med = timed[len(timed) // 2]
    print(json.dumps({"tokens_per_s": B * d.T / med, "step_seconds": med, "steps": args.steps,
                      "threads": torch.get_num_threads(), "precision": args.precision, "last_loss": r["loss"]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("eval", "step"):
        p = sub.add_parser(name)
        p.add_argument("--from", dest="from_", required=True)
        p.add_argument("--config")
        p.add_argument("--data")
        p.add_argument("--threads", type=int, default=1)
    sub.choices["eval"].add_argument("--batches", type=int, default=1 << 30)
    sub.choices["step"].add_argument("--compare")
    sub.choices["step"].add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p = sub.add_parser("bench")
    p.add_argument("--config", required=True)
    p.add_argument("--data")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"eval": cmd_eval, "step": cmd_step, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
