#!/usr/bin/env python3
"""``microseis adapt`` on one held-out site, by the project's own commands (docs/results.md).

1. ``microseis synth --sites other --events 400 --events-per-site 400 --balance equal`` : one
   ``other``-split site (never used in training), 100 events per class;
2. its events, per class in file order, into a *site folder* (``--site-per-class``, 27: adapt
   trains on 20 and holds 7 out) and an independent *evaluation folder* (the rest, 73 per class);
3. ``microseis adapt --data SITE --out site.msb --key KEY`` from the shipped bundle;
4. ``microseis evaluate`` of the shipped bundle and of the adapted one on the evaluation folder.

Prints a table and, as the last line, one JSON object. A throw-away signing key is made in the
work folder unless ``--key`` is given.

    python bench/adapt_site.py --work runs/adapt-site
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

from trainer_results import microseis  # bench/: python -m edge ARGS --json, its last-line JSON

from edge.signal.labels import CLASSES


def split_folder(src: Path, first: Path, rest: Path, per_class: int) -> dict[str, tuple[int, int]]:
    """Copy the first ``per_class`` events of each class (file order) to ``first``, the others
    to ``rest``; both get the source's ``stations.xml`` and ``synth.json`` (they stay marked
    synthetic). Returns {class: (n first, n rest)}."""
    with open(src / "labels.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    taken: dict[str, int] = {}
    parts: dict[Path, list[dict[str, str]]] = {first: [], rest: []}
    for row in rows:
        k = taken.get(row["label"], 0)
        parts[first if k < per_class else rest].append(row)
        taken[row["label"]] = k + 1
    for dest, part in parts.items():
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "waveforms").mkdir(parents=True)
        for meta in ("stations.xml", "synth.json"):
            if (src / meta).is_file():
                shutil.copy2(src / meta, dest / meta)
        for row in part:
            shutil.copy2(src / row["path"], dest / row["path"])
        with open(dest / "labels.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(part)
    return {c: (sum(r["label"] == c for r in parts[first]), sum(r["label"] == c for r in parts[rest]))
            for c in CLASSES}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/adapt-site", help="work folder (runs/adapt-site)")
    p.add_argument("--seed", type=int, default=21, help="synth seed of the site (21)")
    p.add_argument("--site-per-class", type=int, default=27, help="events per class given to adapt (27)")
    p.add_argument("--key", help="signing key (default: a new one in the work folder)")
    p.add_argument("--from", dest="start", help="starting bundle or run (default: the shipped bundle)")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "site-all"
    if not (raw / "labels.csv").is_file():
        microseis("synth", "--sites", "other", "--out", str(raw), "--events", "400", "--events-per-site",
                  "400", "--balance", "equal", "--seed", str(args.seed), "--jobs", "2")
    counts = split_folder(raw, work / "site", work / "eval", args.site_per_class)
    key = args.key
    if key is None:
        key = str(work / "keys" / "bench.key")
        if not Path(key).is_file():
            microseis("keygen", "--out", str(work / "keys"), "--name", "bench")
    pub = str(Path(key).with_suffix(".pub"))
    bundle = work / "site.msb"
    t0 = time.time()
    start = ["--from", args.start] if args.start else []
    report = microseis("adapt", "--data", str(work / "site"), "--out", str(bundle), "--key", key, "--force", *start)
    wall = time.time() - t0
    before = microseis("evaluate", *(["--model", args.start] if args.start else []), "--data", str(work / "eval"),
                       "--out", str(work / "eval-before"))
    after = microseis("evaluate", "--model", str(bundle), "--pubkey", pub, "--data", str(work / "eval"),
                      "--out", str(work / "eval-after"))
    rows = {"before (starting model)": before, "after adapt": after}
    print(f"site {args.seed}: adapt on {sum(a for a, _ in counts.values())} events, "
          f"evaluated on {sum(b for _, b in counts.values())}; adapt took {wall:.1f} s")
    print(f"{'model':<26}{'macro-F1':>9}" + "".join(f"{c[:9]:>10}" for c in CLASSES) + f"{'M±0.3':>8}{'M±0.2':>8}")
    for name, m in rows.items():
        mag = m.get("magnitude") or {}
        print(f"{name:<26}{m['macro_f1']:>9.3f}" + "".join(f"{m['f1'][c]:>10.3f}" for c in CLASSES)
              + f"{mag.get('hit_0_3', float('nan')):>8.3f}{mag.get('hit_0_2', float('nan')):>8.3f}")
    print(json.dumps({"benchmark": "adapt-site", "seed": args.seed, "counts": counts, "adapt_wall_s": wall,
                      "adapt": report, "before": before, "after": after}, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as exc:  # a microseis command failed: its stderr tail
        sys.exit(f"adapt_site: {exc}")
