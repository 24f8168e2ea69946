"""``microseis predict``: batch classification of waveform files or dataset folders -> CSV.

PATHs are waveform files (SAC, MiniSEED, any format ObsPy reads; the files of one station
and overlapping time span, e.g. one SAC file per component, make one event), directories of
them (searched recursively), or dataset folders (with labels.csv: one row per labels.csv row,
the label's trigger_time used). Without a label the trigger is picked with STA/LTA on Z.

Each event is preprocessed with the bundle's window contract and classified by the station
runtime (ONNX Runtime or LiteRT, no torch). The CSV has one row per event: path, station,
trigger_time, trigger_source (label|picked), class, p_<class> per class, uncertainty,
mutual_information, magnitude (learned; empty without a sensitivity), units (m/s|counts),
note (errors and remarks), label. A file that cannot be used gets a row with the reason in
note and an empty class; the batch goes on. Exit 0 when at least one event was classified,
1 when none was, 2 for a bad bundle or bad options.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="batch classification of waveform files or a dataset folder -> CSV",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="waveform file, directory of waveform files, or dataset folder (labels.csv)")
    p.add_argument("--out", required=True, metavar="CSV", help="CSV file to write ('-' for stdout)")
    p.add_argument("--model", metavar="BUNDLE", default=None,
                   help="signed model bundle (default: the shipped edge/models/default.msb)")
    p.add_argument("--pubkey", action="append", metavar="KEY", default=None,
                   help="trusted public key file or directory of *.pub (repeatable; default: edge/keys/*.pub)")
    p.add_argument("--runtime", choices=["onnx", "tflite"], default="onnx", help="model runtime (onnx)")
    p.add_argument("--mc-passes", type=int, default=None, metavar="T",
                   help="MC-dropout passes per event (default: the bundle's)")
    p.add_argument("--station", metavar="NET.STA", default=None,
                   help="keep only this station (files with several stations)")
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--sensitivity", type=float, metavar="COUNTS_PER_M_S", default=None,
                     help="overall sensitivity of every channel, counts per m/s")
    cal.add_argument("--stationxml", metavar="FILE", default=None,
                     help="StationXML with the channels' responses (sensitivity per channel)")
    p.add_argument("--format", metavar="FMT", default=None,
                   help="obspy.read format of loose files, e.g. SAC or MSEED (default: autodetect)")
    p.add_argument("--batch", type=int, default=64, metavar="N", help="windows per model call (64)")
    p.add_argument("--threads", type=int, default=1, help="runtime intra-op threads (1)")
    p.add_argument("--progress-every", type=int, default=50, metavar="N",
                   help="progress line on stderr every N events (50)")
    p.add_argument("--json", action="store_true", help="last line of stdout: the summary as JSON")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace):
    from edge.model.batch_predict import BatchOptions

    if args.station is not None:
        parts = args.station.split(".")
        if len(parts) != 2 or not all(parts):
            raise CommandError(f"--station: expected NET.STA, got {args.station!r}")
    if args.sensitivity is not None and not (args.sensitivity > 0 and math.isfinite(args.sensitivity)):
        raise CommandError(f"--sensitivity must be a finite number > 0 counts per m/s, got {args.sensitivity}")
    if args.mc_passes is not None and args.mc_passes < 1:
        raise CommandError(f"--mc-passes must be >= 1, got {args.mc_passes}")
    if args.batch < 1:
        raise CommandError(f"--batch must be >= 1, got {args.batch}")
    inventory = None
    if args.stationxml:
        import obspy

        try:
            inventory = obspy.read_inventory(args.stationxml)
        except Exception as exc:
            raise CommandError(f"--stationxml {args.stationxml}: unreadable StationXML: "
                               f"{type(exc).__name__}: {exc}") from None
    return BatchOptions(station=args.station, sensitivity=args.sensitivity, inventory=inventory,
                        format=args.format, chunk=args.batch)


def _load(args: argparse.Namespace):
    from edge.model.format import BundleError
    from edge.model.inference import EventClassifier

    try:
        return EventClassifier.load(args.model, trusted_keys=args.pubkey, runtime=args.runtime,
                                    mc_passes=args.mc_passes, threads=args.threads)
    except BundleError as exc:
        if exc.code == "missing":
            raise CommandError(str(exc)) from None
        hint = (" -- give the signer's public key with --pubkey KEY" if exc.code == "untrusted_key"
                and not args.pubkey else "")
        raise CommandError(f"{args.model or 'default bundle'}: bundle rejected: {exc}{hint}") from None
    except (ValueError, OSError) as exc:  # unreadable --pubkey
        raise CommandError(str(exc)) from None
    except ImportError as exc:  # e.g. --runtime tflite without ai-edge-litert
        raise CommandError(f"runtime {args.runtime} unavailable: {exc}") from None


def _table(summary, classes) -> str:
    lines = [f"{'class':<14}{'events':>8}"]
    for c in classes:
        lines.append(f"{c:<14}{summary.by_class.get(c, 0):>8}")
    lines.append(f"{'(errors)':<14}{summary.errors:>8}")
    lines.append(f"{'total':<14}{summary.rows:>8}")
    lines.append(f"wrote {summary.out}: {summary.rows} rows, {summary.classified} classified, "
                 f"{summary.errors} errors (reason in the note column), {summary.seconds:.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    opts = _options(args)
    clf = _load(args)
    from edge.model.batch_predict import BatchPredictor

    def progress(done: int, classified: int, seconds: float) -> None:
        print(f"predict: {done} events ({classified} classified), {seconds:.1f} s",
              file=sys.stderr, flush=True)

    predictor = BatchPredictor(clf, opts, progress=progress, progress_every=args.progress_every)
    to_stdout = args.out == "-"
    try:
        out = sys.stdout if to_stdout else open(args.out, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CommandError(f"--out {args.out}: {exc.strerror or exc}") from None
    try:
        summary = predictor.run(args.paths, out, out_name=args.out)
    finally:
        if not to_stdout:
            out.close()
    if clf.info.synthetic:
        print("note: the model was trained on SYNTHETIC data", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict()))
    elif not to_stdout:
        print(_table(summary, clf.classes))
    else:
        print(_table(summary, clf.classes), file=sys.stderr)
    if summary.classified == 0:
        print(f"microseis predict: error: no event classified ({summary.errors} errors, see {args.out})",
              file=sys.stderr)
        return 1
    return 0
