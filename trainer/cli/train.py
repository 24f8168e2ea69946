"""``microseis train``: train an event model on labeled dataset folders (docs/training.md).

Light module: torch and the trainer are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli import CommandError

HELP = "train an event model (class + magnitude) on labeled dataset folders"
_MODELS = ("resnet18_cbam", "cnn1d", "spectrogram_cnn")


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help=HELP,
        description=HELP + ". Writes RUN/ with model.pt (best epoch), run.json, history.json, "
                    "curves.png, metrics.json and split.json. Same data, seed and --threads give "
                    "the same run.",
    )
    io = p.add_argument_group("data and output")
    io.add_argument("--data", action="append", required=True, metavar="DIR",
                    help="labeled dataset folder (repeat for several)")
    io.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    io.add_argument("--val", action="append", metavar="DIR",
                    help="validation folder(s) instead of a stratified split of --data")
    io.add_argument("--val-fraction", type=float, default=0.15, metavar="F",
                    help="stratified validation fraction of --data (0.15)")
    io.add_argument("--max-labeled", type=_positive_int, default=None, metavar="N",
                    help="use only N labeled training events (stratified, seeded); default all")
    io.add_argument("--cache-dir", metavar="DIR", default=None,
                    help="dataset cache ($MICROSEIS_CACHE or ~/.cache/microseis)")
    io.add_argument("--no-cache", action="store_true", help="do not read or write the dataset cache")
    io.add_argument("--force", action="store_true", help="overwrite an existing run in RUN")

    m = p.add_argument_group("model and optimisation")
    m.add_argument("--model", choices=_MODELS, default=None,
                   help="architecture (resnet18_cbam; with --init: that run's)")
    m.add_argument("--dropout", type=float, default=None, metavar="P",
                   help="MC-dropout probability of the heads (architecture default)")
    m.add_argument("--epochs", type=_positive_int, default=40, metavar="N", help="maximum epochs (40)")
    m.add_argument("--batch-size", type=int, default=32, metavar="N", help="batch size (32)")
    m.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of AdamW (2e-3)")
    m.add_argument("--weight-decay", type=float, default=1e-2, metavar="WD",
                   help="AdamW weight decay on weights, not biases/BatchNorm (1e-2)")
    m.add_argument("--schedule", choices=("onecycle", "cosine", "constant"), default="onecycle",
                   help="learning-rate schedule (onecycle)")
    m.add_argument("--warmup", type=float, default=0.2, metavar="F",
                   help="fraction of the steps warming up (0.2)")
    m.add_argument("--patience", type=int, default=15, metavar="N",
                   help="stop after N epochs without a better validation score; 0 = never (15)")
    m.add_argument("--select-mag-weight", type=float, default=0.25, metavar="W",
                   help="validation score = macro-F1 + W x magnitude hit rate ±0.3 (0.25)")
    m.add_argument("--mag-weight", type=float, default=1.0, metavar="L",
                   help="weight of the magnitude cross-entropy (1.0)")
    m.add_argument("--mag-sigma", type=float, default=0.15, metavar="S",
                   help="sigma of the Gaussian soft magnitude targets, magnitude units; 0 = one-hot (0.15)")
    m.add_argument("--balance", choices=("weighted", "smote", "none"), default="weighted",
                   help="class balancing: weighted sampling, SMOTE, or none (weighted)")
    m.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no augmentation (default: time shift + polarity flip)")
    m.add_argument("--shift", type=float, default=0.3, metavar="S", dest="shift_s",
                   help="maximum random time shift, seconds (0.3)")
    m.add_argument("--no-flip", dest="flip", action="store_false", help="no random polarity flip")
    m.add_argument("--noise-std", type=float, default=0.0, metavar="S",
                   help="add Gaussian noise of S x the window peak (0 = off)")
    m.add_argument("--grad-clip", type=float, default=5.0, metavar="G",
                   help="gradient-norm clipping; 0 = off (5)")
    m.add_argument("--mc-passes", type=_positive_int, default=20, metavar="T",
                   help="MC-dropout passes for the validation metrics (20)")
    m.add_argument("--max-batches", type=_positive_int, default=None, metavar="N",
                   help="at most N batches per epoch (quick looks)")
    m.add_argument("--seed", type=int, default=0, help="random seed (0)")
    m.add_argument("--threads", type=_positive_int, default=2, metavar="N", help="torch CPU threads (2)")

    t = p.add_argument_group("two-stage and transfer")
    t.add_argument("--pretrain-data", action="append", metavar="DIR",
                   help="stage 1: regress seismic attributes on these folders (labels ignored)")
    t.add_argument("--pretrain-epochs", type=_positive_int, default=20, metavar="N",
                   help="stage-1 epochs (20)")
    t.add_argument("--pretrain-lr", type=float, default=None, metavar="LR", help="stage-1 peak lr (--lr)")
    t.add_argument("--init", metavar="RUN", default=None,
                   help="start from this run's weights (backbone, and heads where they fit)")
    t.add_argument("--freeze-backbone-epochs", type=int, default=0, metavar="K",
                   help="keep the backbone frozen for the first K epochs (0)")
    t.add_argument("--backbone-lr-factor", type=float, default=None, metavar="F",
                   help="backbone lr = F x lr (1.0 from scratch, 0.3 after pre-training or --init)")

    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (last line)")
    p.set_defaults(func=run)
    return p


def _check_folders(args: argparse.Namespace) -> None:
    """Cheap checks before importing torch: every folder exists and has labels.csv."""
    for opt, folders in (("--data", args.data), ("--val", args.val or []),
                         ("--pretrain-data", args.pretrain_data or [])):
        for f in folders:
            path = Path(f)
            if not path.is_dir():
                raise CommandError(f"{opt} {f}: " + ("not a folder" if path.exists() else "no such folder"))
            if not (path / "labels.csv").is_file():
                raise CommandError(f"{opt} {f}: no labels.csv in it")
    if args.init is not None and not Path(args.init).is_dir():
        raise CommandError(f"--init {args.init}: no such run directory")


def run(args: argparse.Namespace) -> int:
    _check_folders(args)
    # deferred: torch; `microseis --help` and the station never import it
    from trainer.config import TrainConfig, TrainError
    from trainer.train import summary_json, summary_table, train

    cfg = TrainConfig(
        model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup=args.warmup,
        patience=args.patience, select_mag_weight=args.select_mag_weight,
        val_fraction=args.val_fraction, seed=args.seed, threads=args.threads,
        mag_weight=args.mag_weight, mag_sigma=args.mag_sigma, balance=args.balance,
        augment=args.augment, shift_s=args.shift_s, flip=args.flip, noise_std=args.noise_std,
        max_labeled=args.max_labeled, pretrain_epochs=args.pretrain_epochs,
        pretrain_lr=args.pretrain_lr, backbone_lr_factor=args.backbone_lr_factor,
        freeze_backbone_epochs=args.freeze_backbone_epochs, dropout=args.dropout,
        mc_passes=args.mc_passes, max_batches=args.max_batches, grad_clip=args.grad_clip,
    )
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        result = train(args.data, args.out, cfg, val=args.val, pretrain_data=args.pretrain_data or (),
                       init=args.init, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                       force=args.force, progress=not args.quiet, say=say)
    except TrainError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(summary_json(result), separators=(",", ":")))
    else:
        print(summary_table(result))
    return 0
