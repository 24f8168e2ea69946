"""``microseis train``: train an event model on labeled dataset folders (docs/training.md).

The training options come from :class:`trainer.config.TrainConfig`. Light module: torch and
the trainer are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli import CommandError
from edge.schema import ConfigError
from edge.schema.render import add_options, from_args
from trainer.config import DATA, OPTIM, STAGES, TrainConfig, TrainError

HELP = "train an event model (class + magnitude) on labeled dataset folders"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help=HELP,
        description=HELP + ". Writes RUN/ with model.pt (best epoch), run.json, history.json, "
                    "curves.png, metrics.json and split.json. Same data, seed and --threads give "
                    "the same run.",
    )
    io = p.add_argument_group(DATA)
    io.add_argument("--data", action="append", required=True, metavar="DIR",
                    help="labeled dataset folder (repeat for several)")
    io.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    io.add_argument("--val", action="append", metavar="DIR",
                    help="validation folder(s) instead of a stratified split of --data")
    io.add_argument("--cache-dir", metavar="DIR", default=None,
                    help="dataset cache ($MICROSEIS_CACHE or ~/.cache/microseis)")
    io.add_argument("--no-cache", action="store_true", help="do not read or write the dataset cache")
    io.add_argument("--force", action="store_true", help="overwrite an existing run in RUN")
    m = p.add_argument_group(OPTIM)
    t = p.add_argument_group(STAGES)
    t.add_argument("--pretrain-data", action="append", metavar="DIR",
                   help="stage 1: regress seismic attributes on these folders (labels ignored)")
    t.add_argument("--init", metavar="RUN", default=None,
                   help="start from this run's weights (backbone, and heads where they fit)")
    # the training options: declared once, in TrainConfig (type, default, bounds, help)
    add_options(p, TrainConfig, groups={DATA: io, OPTIM: m, STAGES: t})

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
    try:
        cfg = from_args(TrainConfig, args)
    except ConfigError as exc:
        raise CommandError("; ".join(exc.errors)) from None
    # deferred: torch; `microseis --help` and the station never import it
    from trainer.train import summary_json, summary_table, train

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
