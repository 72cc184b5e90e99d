#!/usr/bin/python3
"""One repeat of scripts/bench_cpu.sh, side by side: moe and PyTorch per precision.

  bench_cpu_report.py OUT REPEAT WARMUP LOAD_BEFORE LOAD_AFTER PRECISION...

OUT holds peak_P_R.json (tests/bench/bench_peak.cpp, run just before moe's P run), moe_P_R/ (a run directory: metrics.jsonl,
load_balance.h5) and torch_P_R.json (moe_ref.py bench) for each precision P of repeat R.
MFU = tokens/s x the trainer's FLOPs per token / peak, the peak of the run's precision: the sgemm
peak for fp32, the bf16 GEMM kernel's peak for bf16 (measured by bench_peak just before that run:
a loaded machine's peak moves within minutes).
"""
import json
import statistics
import sys

import h5py


def phases(run, warmup):
    """moe's median seconds per phase over the timed steps, 'other' = step minus the named phases."""
    with h5py.File(f"{run}/load_balance.h5", "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["phase_seconds"].attrs["phases"]]
        secs = f["phase_seconds"][warmup:]
    med = {n: statistics.median(float(s[i]) for s in secs) for i, n in enumerate(names)}
    step = med.pop("step")
    med["other"] = step - sum(med.values())  # embedding, norms, LM head, loss, grad norm, zeroing
    return step, {n: v for n, v in med.items() if v > 0.0005}


def main():
    out, rep, warmup, load0, load1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    precisions = sys.argv[6:]
    print(f"repeat {rep} (load average {load0} before, {load1} after):")
    moe_tps, ref_tps = {}, {}
    for p in precisions:
        peak = json.load(open(f"{out}/peak_{p}_{rep}.json"))
        fpt = peak["flops_per_token"]
        peaks = {"fp32": peak["sgemm_peak"], "bf16": peak["bf16_peak"]}
        print(f"  {p} peaks before the run (square {peak['n']}, best of 10, {peak['threads']} threads): sgemm "
              f"{peaks['fp32'] * 1e-9:.1f} GFLOP/s, bf16 {peaks['bf16'] * 1e-9:.1f} GFLOP/s "
              f"({'AVX-512 BF16 kernel' if peak['bf16_kernel'] else 'no AVX-512 BF16: sgemm path'})"
              f"; {fpt * 1e-6:.1f} MFLOP/token")
        rows = [json.loads(l) for l in open(f"{out}/moe_{p}_{rep}/metrics.jsonl")][warmup:]
        moe_tps[p] = statistics.median(r["tokens_per_s"] for r in rows)
        trainer_mfu = statistics.median(r["mfu"] for r in rows)
        ref_tps[p] = json.load(open(f"{out}/torch_{p}_{rep}.json"))["tokens_per_s"]
        mfu = lambda tps, fpt=fpt, pk=peaks[p]: 100 * tps * fpt / pk
        print(f"  {p} moe      {moe_tps[p]:8.1f} tokens/s  MFU {mfu(moe_tps[p]):5.1f}% of the {p} peak"
              f"   (trainer mfu vs its fp32 sgemm peak: {100 * trainer_mfu:.1f}%; {len(rows)} steps)")
        print(f"  {p} PyTorch  {ref_tps[p]:8.1f} tokens/s  MFU {mfu(ref_tps[p]):5.1f}% of the {p} peak")
        print(f"  {p} moe / PyTorch = {moe_tps[p] / ref_tps[p]:.2f}x")
        step, parts = phases(f"{out}/moe_{p}_{rep}", warmup)
        print(f"  {p} moe phases, median s/step: step {step:.3f} = "
              + "  ".join(f"{n} {v:.3f}" for n, v in parts.items()))
    if "fp32" in moe_tps and "bf16" in moe_tps:
        print(f"  moe bf16 / PyTorch fp32 = {moe_tps['bf16'] / ref_tps['fp32']:.2f}x;"
              f"  moe bf16 / moe fp32 = {moe_tps['bf16'] / moe_tps['fp32']:.2f}x;"
              f"  PyTorch bf16 / PyTorch fp32 = {ref_tps['bf16'] / ref_tps['fp32']:.2f}x")


if __name__ == "__main__":
    main()
