"""``microseis adapt``: fine-tune the shipped model (or the one given) on a site's labeled
events, export int8, sign, and report the model before and after on a held-out part.

Writes, for ``--out site.msb``: ``site.msb`` (signed bundle for the stations), ``site.weights/``
(its float weights, to adapt it again) and ``site.report/`` (adapt.json, confusion and
per-class plots before/after). Bad input (a site folder with one class, too few events to
hold some out, labels the model does not know without --new-classes, a key that is not an
ed25519 private key, a starting model without float weights) exits 2 and writes nothing.
Guide: docs/adapt.md.

Example::

    microseis adapt --data site-labels/ --out site.msb --key ~/.config/microseis/site.key
"""
from __future__ import annotations

import argparse
import json

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="fine-tune the model on a site's labeled events, export int8, sign",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR", help="the site's labeled dataset folder")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle file to write (*.msb)")
    p.add_argument("--key", required=True, metavar="PRIVATE_KEY", help="ed25519 private key (microseis keygen)")
    p.add_argument("--from", dest="source", metavar="BUNDLE_OR_RUN",
                   help="starting model: a bundle with float weights (BUNDLE's .weights/ folder or "
                        "the shipped ones) or a `microseis train` run directory (default: the "
                        "shipped bundle)")
    p.add_argument("--new-classes", action="store_true",
                   help="allow labels the starting model does not know (the class head grows)")
    p.add_argument("--held-out", type=float, default=0.25, metavar="F",
                   help="stratified fraction held out for early stopping and before/after (0.25)")
    p.add_argument("--epochs", type=int, default=30, metavar="N", help="maximum epochs (30)")
    p.add_argument("--patience", type=int, default=8, metavar="N",
                   help="stop after N epochs without a better held-out score (8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the heads (1e-3)")
    p.add_argument("--backbone-lr-factor", type=float, default=0.3, metavar="F",
                   help="backbone learning rate = lr x F (0.3)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="batch size (16)")
    p.add_argument("--max-batches", type=int, metavar="N", help="at most N batches per epoch (quick looks)")
    p.add_argument("--mc-passes", type=int, default=20, metavar="T",
                   help="MC-dropout passes the station runs per event (20)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the split and the training (0)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="torch CPU threads (2)")
    p.add_argument("--name", help="bundle name (<starting bundle>-site)")
    p.add_argument("--version", help="bundle version (<starting version>+adapt.<labels hash>)")
    p.add_argument("--cache-dir", metavar="DIR", help="dataset cache (as microseis train)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the dataset cache")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle / report")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object (last line)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # deferred: torch and the exporter stay off the station's `microseis` start-up
    from trainer.adapt import AdaptConfig, AdaptError, adapt
    from trainer.adapt_report import report_table

    cfg = AdaptConfig(held_out=args.held_out, epochs=args.epochs, patience=args.patience, lr=args.lr,
                      backbone_lr_factor=args.backbone_lr_factor, batch_size=args.batch_size,
                      seed=args.seed, threads=args.threads, max_batches=args.max_batches,
                      mc_passes=args.mc_passes, new_classes=args.new_classes, name=args.name,
                      version=args.version)
    say = (lambda msg: None) if args.quiet else None
    try:
        rep = adapt(args.data, args.out, args.key, args.source, cfg, force=args.force,
                    cache_dir=args.cache_dir, use_cache=not args.no_cache,
                    progress=not args.quiet, say=say)
    except AdaptError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(rep))
    else:
        print(report_table(rep))
    return 0
