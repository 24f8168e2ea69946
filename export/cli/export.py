"""``microseis export``: build a signed model bundle from a training run.

The run's model is exported to ONNX fp32 (MC-dropout noise as a graph input), quantized to
static int8 QDQ with calibration on training windows (``--int8``), optionally converted to
TFLite (``--tflite``, needs the ``tflite-export`` extra), checked against the fp32 graph on a
labeled dataset (the parity report: top-class agreement, macro-F1, magnitude hit rates,
p50/p99 latency on one thread, file sizes; printed and stored in the manifest), and signed
with an ed25519 key (``microseis keygen``). The bundle is verified -- signature, hashes,
self-test -- before it is written. Format: docs/bundle.md.

Example (the shipped default bundle; ``bench/default_bundle.py`` runs the whole recipe)::

    microseis export --run runs/bench/default --out edge/models/default.msb \\
        --key ~/.config/microseis/project.key --int8 --parity-data data/bench-test
"""
from __future__ import annotations

import argparse
import json

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="build a signed model bundle (ONNX int8 / TFLite) from a run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="RUN", help="training run directory (microseis train)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle file to write (*.msb)")
    p.add_argument("--key", required=True, metavar="PRIVATE_KEY", help="ed25519 private key (microseis keygen)")
    p.add_argument("--int8", action="store_true",
                   help="ship the static int8 ONNX graph as the default model (else fp32)")
    p.add_argument("--fp32", action=argparse.BooleanOptionalAction, default=None,
                   help="also ship the fp32 ONNX graph (default: only without --int8)")
    p.add_argument("--tflite", action="store_true",
                   help="also build TFLite fp32/int8 with litert-torch and ship the int8 one")
    p.add_argument("--parity-data", metavar="DIR",
                   help="labeled dataset for the parity report (default: the run's first training "
                        "folder, which flatters the model: pass the test split)")
    p.add_argument("--parity-events", type=int, metavar="N", help="use at most N events of it")
    p.add_argument("--calibration", metavar="DIR",
                   help="dataset folder of calibration windows (default: the run's first training folder)")
    p.add_argument("--calibration-events", type=int, default=256, metavar="N", help="calibration windows (256)")
    p.add_argument("--mc-passes", type=int, default=20, metavar="T",
                   help="MC-dropout passes the station runs per event (20)")
    p.add_argument("--name", help="bundle name (microseis-<architecture>)")
    p.add_argument("--version", default="0.1.0", help="bundle version (0.1.0)")
    p.add_argument("--description", help="one-line description in the manifest")
    p.add_argument("--latency-repeats", type=int, default=300, metavar="N",
                   help="timed forward passes per format (300)")
    p.add_argument("--cache-dir", metavar="DIR", help="dataset cache (as microseis train)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="last line of stdout: path, size, parity as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.model.format import BundleError
    from export.build import ExportError, ExportOptions, build_bundle

    if args.mc_passes < 1:
        raise CommandError(f"--mc-passes must be >= 1, got {args.mc_passes}")
    opts = ExportOptions(
        int8=args.int8, fp32=args.fp32, tflite=args.tflite, parity_data=args.parity_data,
        calibration_data=args.calibration, calibration_events=args.calibration_events,
        parity_events=args.parity_events, mc_passes=args.mc_passes, name=args.name,
        version=args.version, description=args.description, latency_repeats=args.latency_repeats,
        cache_dir=args.cache_dir)
    try:
        res = build_bundle(args.run, args.out, args.key, opts, progress=not args.quiet)
    except (ExportError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    m = res["manifest"]
    if args.json:
        print(json.dumps({"path": res["path"], "size": res["size"], "name": m["name"],
                          "version": m["version"], "shipped": res["shipped"],
                          "synthetic": m["training_data"]["synthetic"], "parity": res["parity"]}))
    else:
        print(res["table"])
        print(f"wrote {res['path']} ({res['size'] / 1e6:.3f} MB): {m['name']} {m['version']}, "
              f"models {', '.join(res['shipped'])}")
        if m["training_data"]["synthetic"]:
            print("NOTE: trained on synthetic data -- " + m["training_data"]["notice"])
    return 0
