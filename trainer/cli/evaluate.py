"""``microseis evaluate``: score a training run or a signed model bundle on a labeled dataset
folder; writes ``metrics.json``, ``predictions.csv`` and figures (docs/evaluation.md).

Light module: torch, matplotlib and the dataset code are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json

from edge.cli import CommandError
from trainer.metrics import format_value, metrics_table

HELP = "score a model on a labeled dataset: metrics.json, predictions.csv, plots"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate", help=HELP,
        description=HELP + ". Rows with labels the model does not know are reported (file and "
                           "line) and skipped.",
    )
    p.add_argument("--model", default=None, metavar="BUNDLE_OR_RUN",
                   help="signed model bundle (.msb) or training run directory (holding model.pt); "
                        "default: the shipped bundle edge/models/default.msb")
    p.add_argument("--data", required=True, metavar="DIR", help="labeled dataset folder (labels.csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--mc-passes", type=int, default=20, metavar="N",
                   help="Monte-Carlo-dropout passes per event; 1 = deterministic (20)")
    p.add_argument("--gradcam", type=int, default=8, metavar="N",
                   help="events shown with Grad-CAM, spread over the classes; 0 = none (8)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the dropout masks (0)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="events per forward call (64)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where preprocessed windows are cached ($MICROSEIS_CACHE or ~/.cache/microseis)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the window cache")
    p.add_argument("--pubkey", action="append", metavar="KEY",
                   help="public key a bundle may be signed with (repeatable; default: the shipped keys)")
    p.add_argument("--runtime", choices=("onnx", "tflite"), default="onnx",
                   help="runtime for a bundle (onnx)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object (last line)")
    p.set_defaults(func=run)
    return p


def format_table(m: dict) -> str:
    """The readable summary printed without ``--json``."""
    data, model = m.get("data", {}), m.get("model", {})
    syn = m.get("synthetic", {})
    lines = [
        f"model {model.get('name')} ({model.get('architecture', model.get('kind'))}"
        f"{', synthetic-trained' if syn.get('model') else ''}) on {data.get('path')}"
        f"{' (synthetic)' if syn.get('data') else ''}",
        f"events {data.get('n_events')}, skipped rows {data.get('n_skipped')}, "
        f"MC-dropout passes {m.get('mc_passes')}",
        f"macro-F1 {format_value(m.get('macro_f1'))}   accuracy {format_value(m.get('accuracy'))}",
        *metrics_table(m),
    ]
    u = m.get("uncertainty") or {}
    ratio = u.get("ratio_wrong_to_correct")
    verdict = "" if ratio is None else (" (meets ≥2 target)" if u.get("meets_target") else " (below ≥2 target)")
    lines.append(f"uncertainty: correct {format_value(u.get('mean_correct'))}, misclassified "
                 f"{format_value(u.get('mean_wrong'))}, ratio {format_value(ratio, 2)}{verdict}")
    skipped = data.get("skipped") or []
    for s in skipped[:10]:
        lines.append(f"skipped: {s['text']}")
    if data.get("n_skipped", 0) > 10:
        lines.append(f"skipped: ... {data['n_skipped'] - 10} more in metrics.json")
    for note in m.get("notes") or []:
        lines.append(f"note: {note}")
    if m.get("out"):
        plots = ", ".join(sorted((m.get("plots") or {}).values()))
        lines.append(f"written to {m['out']}: metrics.json, predictions.csv{', ' + plots if plots else ''}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.mc_passes < 1:
        raise CommandError("--mc-passes must be >= 1")
    if args.gradcam < 0:
        raise CommandError("--gradcam must be >= 0")
    if args.batch_size < 1:
        raise CommandError("--batch-size must be >= 1")
    from trainer.evaluate import EvaluationError, evaluate

    if args.model is None:
        from edge.model.format import DEFAULT_BUNDLE  # deferred: only when no --model is given

        args.model = str(DEFAULT_BUNDLE)

    try:
        metrics = evaluate(args.model, args.data, args.out, mc_passes=args.mc_passes,
                           gradcam_events=args.gradcam, seed=args.seed, batch_size=args.batch_size,
                           cache_dir=args.cache_dir, use_cache=not args.no_cache,
                           progress=not args.json, trusted_keys=args.pubkey, runtime=args.runtime)
    except EvaluationError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from None
    metrics = dict(metrics, out=str(args.out))
    if args.json:
        print(json.dumps(metrics, separators=(",", ":")))
    else:
        print(format_table(metrics))
    return 0
