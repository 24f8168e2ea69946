#!/usr/bin/env python3
"""Where a training epoch of the default model goes: batch assembly + augmentation (data),
forward, backward, optimizer step -- timed per batch with ``time.perf_counter`` on the real
training loop's operations, plus the top of a ``torch.profiler`` table for one batch.

    python bench/train_profile.py --data data/site-train --batches 30 --threads 2

The windows come from the trainer's cache (``trainer.data.load_dataset``, the preprocessed
arrays: no file is read during an epoch). Prints a table and, as the last line, a JSON object
with seconds per batch of each phase and the projected epoch time for ``--events`` events.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edge.signal.labels import CLASSES  # noqa: E402
from edge.signal.preprocess import WindowSpec  # noqa: E402
from trainer.data import load_dataset  # noqa: E402
from trainer.models.registry import build_model  # noqa: E402
from trainer.training.inputs import augment_waveforms  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (its cache is built if missing)")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--events", type=int, default=6500, help="training events per epoch to project (6500)")
    p.add_argument("--channels-last", action="store_true", help="no effect on 1-D convs; kept for the record")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = WindowSpec()
    t0 = time.perf_counter()
    arrays, _ = load_dataset(args.data, spec, CLASSES, progress=False)
    load_s = time.perf_counter() - t0
    model = build_model("resnet18_cbam", n_classes=len(CLASSES))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    n = len(arrays)
    times = {"data": [], "forward": [], "backward": [], "optimizer": []}
    for b in range(args.batches + 2):
        t = time.perf_counter()
        idx = rng.choice(n, size=args.batch_size, replace=n < args.batch_size)
        xb, _, _ = augment_waveforms(arrays.x[idx], rng, spec.sampling_rate, 0.3, True, 0.0)
        xt = torch.from_numpy(np.ascontiguousarray(xb, np.float32))
        yt = torch.from_numpy(np.maximum(arrays.y[idx], 0))
        lp = torch.from_numpy(arrays.log_peak[idx].reshape(-1, 1))
        t1 = time.perf_counter()
        logits, mag = model(xt, lp)
        loss = F.cross_entropy(logits, yt) + mag.logsumexp(-1).mean() * 0.0
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if b >= 2:  # the first two batches warm up the allocator and oneDNN
            for k, v in zip(times, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
                times[k].append(v)
    per = {k: float(np.median(v)) for k, v in times.items()}
    total = sum(per.values())
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        logits, mag = model(xt, lp)
        F.cross_entropy(logits, yt).backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    n_batches = -(-args.events // args.batch_size)
    print(f"{'phase':<12}{'s/batch':>10}{'share':>8}")
    for k, v in per.items():
        print(f"{k:<12}{v:>10.4f}{100 * v / total:>7.1f}%")
    print(f"epoch of {args.events} events ({n_batches} batches of {args.batch_size}): "
          f"{total * n_batches:.0f} s with --threads {args.threads}; cache load {load_s:.1f} s")
    print(json.dumps({"benchmark": "train_profile", "threads": args.threads, "per_batch_s": per,
                      "epoch_s": total * n_batches, "events": args.events, "cache_load_s": load_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
