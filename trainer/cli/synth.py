"""``microseis synth``: write a synthetic labeled dataset folder (docs/spec/dataset.md).

Fractures, rockfalls, local earthquakes (amplitudes consistent with ML) and noise transients
on a 3-component 4.5 Hz geophone + 24-bit digitizer; see docs/synthetic.md. Light module:
numpy/obspy are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys

from edge.cli import CommandError

HELP = "write a synthetic labeled dataset (fracture/rockfall/earthquake/noise)"


def _balance(text: str):
    """``bossea``, ``equal`` or ``class=weight,...`` (argparse type)."""
    if text in ("bossea", "equal"):
        return text
    from edge.signal.labels import CLASSES

    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or name not in CLASSES or weight < 0:
            raise argparse.ArgumentTypeError(
                f"bad balance {text!r}: use bossea, equal or CLASS=WEIGHT,... with classes "
                f"{', '.join(CLASSES)}")
        weights[name] = weight
    return weights


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help=HELP, description=HELP + ". Same seed and options give identical files.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    p.add_argument("--events", type=int, default=400, metavar="N", help="number of events (400)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    p.add_argument("--balance", type=_balance, default="bossea", metavar="BALANCE",
                   help="class balance: 'bossea' (257:21:36:41, the default), 'equal', or relative "
                        "weights such as 'earthquake=1' or 'fracture=2,earthquake=1'")
    p.add_argument("--snr-db", nargs=2, type=float, default=(6.0, 30.0), metavar=("MIN", "MAX"),
                   help="SNR range in dB (6 30); for earthquakes MIN is a detection threshold")
    p.add_argument("--season-shift", type=float, default=0.0, metavar="HZ",
                   help="shift of the fracture peak frequency, Hz (0)")
    p.add_argument("--sampling-rate", type=float, default=250.0, metavar="HZ", help="sampling rate (250)")
    p.add_argument("--magnitude-range", nargs=2, type=float, default=(0.0, 3.0), metavar=("MIN", "MAX"),
                   help="earthquake ML range, uniform (0 3)")
    p.add_argument("--b-value", type=float, default=None, metavar="B",
                   help="draw magnitudes from a truncated Gutenberg-Richter law with this b-value")
    p.add_argument("--distance-km", nargs=2, type=float, default=(2.0, 80.0), metavar=("MIN", "MAX"),
                   help="earthquake hypocentral distance range, km (2 80)")
    p.add_argument("--noise-rms", nargs=2, type=float, default=(1e-9, 1e-7), metavar=("MIN", "MAX"),
                   help="background ground-velocity rms range, m/s, log-uniform (1e-9 1e-7)")
    p.add_argument("--stations", type=int, default=3, metavar="N", help="stations S1..SN (3)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (1)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    p.set_defaults(func=run)
    return p


def _progress_printer(stream=None):
    """Progress lines every 10 % on ``stream`` (the current ``sys.stderr`` when None)."""
    state = {"next": 10}

    def progress(done: int, total: int, elapsed: float) -> None:
        pct = 100 * done // total
        if pct >= state["next"] or done == total:
            print(f"synth: {done}/{total} events ({pct}%), {elapsed:.1f} s",
                  file=stream or sys.stderr, flush=True)
            state["next"] = (pct // 10 + 1) * 10

    return progress


def _table(summary: dict, out: str) -> str:
    n = summary["n_events"]
    lines = [
        f"synthetic dataset {out}: {n} events, seed {summary['seed']}, "
        f"{summary['sampling_rate']:g} Hz, {summary.get('elapsed_s', 0):.1f} s",
        f"{'class':<12}{'events':>8}{'share':>9}",
    ]
    for c, k in summary["counts"].items():
        lines.append(f"{c:<12}{k:>8}{100 * k / max(n, 1):>8.1f}%")
    m = summary.get("magnitude")
    if m:
        lines.append(f"earthquake ML {m['min']:.2f} .. {m['max']:.2f} (mean {m['mean']:.2f})")
    if summary.get("noise_subtypes"):
        lines.append("noise subtypes: " + ", ".join(f"{k} {v}" for k, v in summary["noise_subtypes"].items()))
    lines.append("files: labels.csv, truth.csv, stations.xml, synth.json, waveforms/")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from trainer.synth import SynthConfig, generate_dataset
    from trainer.synth.dataset_writer import DatasetExistsError

    if args.jobs < 1:
        raise CommandError("--jobs must be >= 1")
    cfg = SynthConfig(
        n_events=args.events, seed=args.seed, balance=args.balance,
        snr_db=tuple(args.snr_db), season_shift_hz=args.season_shift,
        sampling_rate=args.sampling_rate, magnitude_range=tuple(args.magnitude_range),
        magnitude_b_value=args.b_value, distance_km=tuple(args.distance_km),
        noise_rms=tuple(args.noise_rms), n_stations=args.stations,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        summary = generate_dataset(cfg, args.out, force=args.force, jobs=args.jobs,
                                   progress=_progress_printer())
    except DatasetExistsError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:  # unwritable folder, disk full, ...
        raise CommandError(f"cannot write {args.out}: {exc}") from None
    if args.json:
        out = {k: v for k, v in summary.items() if k != "config"}
        out["out"] = str(args.out)
        print(json.dumps(out, separators=(",", ":")))
    else:
        print(_table(summary, str(args.out)))
    return 0
