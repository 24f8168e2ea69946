"""``microseis synth-continuous``: hours of continuous raw records from synthetic sites
(sampling rate, sensor, noise drawn per site; a held-out ``other`` split), with a catalogue of
the fractures, rockfalls, earthquakes and noise transients in them. See docs/synthetic.md.
Light module: numpy/obspy are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import math
import sys

from edge.cli import CommandError

HELP = "write continuous records of synthetic sites with an event catalogue"
SPLITS = ("train", "other")
MAX_HOURS = 24.0 * 31
MAX_SITES = 999


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth-continuous", help=HELP,
        description=HELP + ". Same arguments give identical files. The 'other' split uses a "
                           "sampling rate, an instrument and noise slopes that 'train' never uses.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    # Numbers are parsed in run() so that every bad value is one line and exit 2.
    p.add_argument("--hours", default="1", metavar="H", help="hours of record per site (1)")
    p.add_argument("--sites", default="1", metavar="N", help="number of sites (1)")
    p.add_argument("--split", default="train", metavar="SPLIT", help="train or other (train)")
    p.add_argument("--seed", default="0", metavar="S", help="random seed (0)")
    p.add_argument("--start", default="2025-01-01T00:00:00Z", metavar="TIME",
                   help="UTC start of every record (2025-01-01T00:00:00Z)")
    p.add_argument("--jobs", default="1", metavar="N", help="worker processes, one site each (1)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    p.set_defaults(func=run)
    return p


def _number(name: str, text: str, kind: type, lo: float, hi: float) -> float | int:
    try:
        v = kind(text)
    except (TypeError, ValueError):
        raise CommandError(f"--{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi) or (kind is float and v <= 0):
        low = "> 0" if kind is float else f">= {lo:g}"
        high = f"{int(hi)}" if kind is int else f"{hi:g}"
        raise CommandError(f"--{name} must be {low} and <= {high}, got {text!r}")
    return v


def _progress(stream=None):
    def progress(station: str, done: int, total: int) -> None:
        print(f"synth-continuous: {station} hour {done}/{total}", file=stream or sys.stderr, flush=True)
    return progress


def run(args: argparse.Namespace) -> int:
    hours = _number("hours", args.hours, float, 0.0, MAX_HOURS)
    n_sites = _number("sites", args.sites, int, 1, MAX_SITES)
    seed = _number("seed", args.seed, int, 0, 2**32 - 1)
    jobs = _number("jobs", args.jobs, int, 1, 64)
    if args.split not in SPLITS:
        raise CommandError(f"--split must be train or other, got {args.split!r}")
    from obspy import UTCDateTime

    try:
        UTCDateTime(args.start)
    except Exception:  # noqa: BLE001 -- obspy raises several types for a bad time string
        raise CommandError(f"--start is not a UTC time: {args.start!r}") from None

    from trainer.synth.continuous import generate_continuous
    from trainer.synth.continuous_writer import ContinuousExistsError

    try:
        summary = generate_continuous(args.out, hours=hours, n_sites=n_sites, split=args.split,
                                      seed=seed, start=args.start, jobs=jobs, force=args.force,
                                      progress=_progress())
    except ContinuousExistsError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # unwritable folder, disk full, ...
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    site_hours = hours * n_sites
    el = summary["elapsed_s"]
    print(f"synthetic continuous records {args.out}: {n_sites} {args.split} site(s) x {hours:g} h, "
          f"seed {seed}, {el:.1f} s ({site_hours * 3600 / max(el, 1e-9):.0f} x real time)")
    for s in summary["sites"]:
        ev = ", ".join(f"{k} {v}" for k, v in s["events"].items())
        print(f"  {s['network']}.{s['station']}  {s['sampling_rate']:g} Hz  {s['instrument']:<13} "
              f"gain {s['preamp_gain']:g}  {ev}")
    print("files: catalog.csv, sites.json, stations.xml, <STA>/*.mseed")
    return 0
