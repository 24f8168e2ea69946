"""``microseis synth``: write a synthetic labeled dataset folder (docs/spec/dataset.md).

Fractures, rockfalls, local earthquakes (amplitudes consistent with ML) and noise transients
on a 3-component 4.5 Hz geophone + 24-bit digitizer; see docs/synthetic.md. The options of
the parameters come from :class:`trainer.synth.config.SynthConfig`. Light module: numpy/obspy
are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys

from edge.cli import CommandError
from edge.schema import ConfigError
from edge.schema.render import add_options, from_args
from trainer.synth.config import SynthConfig

HELP = "write a synthetic labeled dataset (fracture/rockfall/earthquake/noise)"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help=HELP, description=HELP + ". Same seed and options give identical files.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be empty or new)")
    add_options(p, SynthConfig)  # --events, --seed, --balance, ...: declared in SynthConfig
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
    rate = summary["sampling_rate"]
    where = (f"{rate:g} Hz" if not summary.get("sites") else
             f"{len(summary['sites'])} {summary['site_split']} sites")
    lines = [
        f"synthetic dataset {out}: {n} events, seed {summary['seed']}, "
        f"{where}, {summary.get('elapsed_s', 0):.1f} s",
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
    if args.jobs < 1:
        raise CommandError("--jobs must be >= 1")
    try:
        cfg = from_args(SynthConfig, args, base={"sites": "train"})  # new benchmarks: drawn sites
    except ConfigError as exc:
        raise CommandError(str(exc).replace("\n", "; ")) from None
    from trainer.synth import generate_dataset
    from trainer.synth.dataset_writer import DatasetExistsError

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
