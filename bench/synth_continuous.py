"""Speed of the continuous site generator (``microseis synth-continuous``).

For every sampling rate of :data:`trainer.synth.sites.RATES` it takes the first site of
``draw_site(default_rng([0, i]), split)`` (train, or other for 200 Hz) with that rate and
writes ``--hours`` of its record (3 channels, MiniSEED hour files, StationXML, events) into a
temporary folder with :func:`trainer.synth.continuous.record_site`, in this process. The
first run of each is timed (the response spectra and noise model are built inside it).

Prints a table (one row per site) and, last, one JSON line::

    {"benchmark": "synth_continuous", "s_per_hour": {"250": ...}, ...}

``python bench/synth_continuous.py [--hours 1] [--rates 100,250,1000]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.synth.continuous import record_site  # noqa: E402
from trainer.synth.sites import RATES, SPLITS, draw_site  # noqa: E402


def site_for(rate: float):
    split = "train" if rate in SPLITS["train"].rates else "other"
    for i in range(1000):
        s = draw_site(np.random.default_rng([0, i]), split, network="XS", station=f"B{int(rate)}"[:5])
        if s.sampling_rate == rate:
            return s
    raise RuntimeError(f"no site at {rate} Hz")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    args = ap.parse_args(argv)
    out: dict[str, float] = {}
    print(f"{'rate Hz':>8} {'instrument':<13} {'events':>6} {'MB':>6} {'s':>7} {'s per h':>8} {'x real time':>12}")
    for rate in (float(x) for x in args.rates.split(",")):
        site = site_for(rate)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = record_site(site, 0, 0, "2025-01-01T00:00:00Z", args.hours, tmp)
            dt = time.perf_counter() - t0
            mb = sum(p.stat().st_size for p in Path(tmp).rglob("*")) / 1e6
        per_h = dt / args.hours
        out[f"{rate:g}"] = round(per_h, 3)
        print(f"{rate:>8g} {site.instrument:<13} {len(res['rows']):>6} {mb:>6.1f} {dt:>7.2f} {per_h:>8.2f} "
              f"{3600 / per_h:>12.0f}")
    print(json.dumps({"benchmark": "synth_continuous", "hours": args.hours, "s_per_hour": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
