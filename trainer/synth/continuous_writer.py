"""The folder of ``microseis synth-continuous`` (:mod:`.continuous`)::

    DIR/
      catalog.csv                 every event of every site, by site then time (CATALOG_COLUMNS)
      sites.json                  split, seed, hours, held-out and shared ranges, every site
      stations.xml                StationXML of all sites (full responses)
      T001/XS.T001.xml            StationXML of that site alone
      T001/XS.T001.00.DPZ.2025.001.00.mseed   one file per channel and UTC hour, int32 counts

Nothing time-dependent is written, so the same arguments give identical bytes.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["ContinuousExistsError", "finish", "prepare"]

OUTPUT_FILES = ("catalog.csv", "sites.json", "stations.xml")
_SITE_DIR = re.compile(r"^[TO]\d{3}$")


class ContinuousExistsError(FileExistsError):
    """The output folder is not empty and ``force`` was not given."""


def prepare(out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Create ``out_dir`` (refusing a non-empty one unless ``force``; then only the files this
    command writes are removed). Raises ``OSError`` when it cannot be written."""
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ContinuousExistsError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not force:
            raise ContinuousExistsError(f"{root} is not empty (use --force to overwrite)")
        for name in OUTPUT_FILES:
            p = root / name
            if p.is_file():
                p.unlink()
        for d in root.iterdir():
            if d.is_dir() and _SITE_DIR.match(d.name):
                for p in d.iterdir():
                    if p.is_file() and p.suffix in (".mseed", ".xml"):
                        p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    probe = root / ".synth-continuous-write-test"
    probe.write_bytes(b"")
    probe.unlink()
    return root


def finish(root: Path, results: list[dict[str, Any]], *, split: str, seed: int, hours: float,
           start: str) -> dict[str, Any]:
    """Write ``catalog.csv``, ``sites.json`` and ``stations.xml``; return the summary."""
    import numpy as np
    import obspy
    import scipy

    from edge import __version__

    from .continuous import CATALOG_COLUMNS, CLASSES, EVENT_RANGES
    from .dataset_writer import format_value
    from .sites import SHARED, SPLITS, site_inventory

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CATALOG_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in results:
        for row in r["rows"]:
            w.writerow({k: format_value(row.get(k)) for k in CATALOG_COLUMNS})
    (root / "catalog.csv").write_bytes(buf.getvalue().encode("utf-8"))
    site_inventory([r["site"] for r in results], start).write(
        str(root / "stations.xml"), format="STATIONXML", validate=True)
    sites = []
    total: Counter = Counter()
    for r in results:
        counts = Counter(row["label"] for row in r["rows"])
        total.update(counts)
        d = r["site"].to_dict()
        d.update({"events": {c: counts.get(c, 0) for c in CLASSES},
                  "clipped_samples": r["clipped_samples"], "stationxml": f"{r['site'].station}/{r['site'].net_sta}.xml",
                  "files": r["files"]})
        sites.append(d)
    summary: dict[str, Any] = {
        "synthetic": True,
        "generator": "trainer.synth.continuous",
        "software": {"microseis-edge": __version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "obspy": obspy.__version__},
        "split": split, "seed": seed, "hours": hours, "start": start,
        "end": results[0]["end"] if results else start,
        "events": {c: total.get(c, 0) for c in CLASSES},
        "held_out": {k: v.to_dict() for k, v in SPLITS.items()},
        "shared": SHARED,
        "event_ranges": {k: list(v) if isinstance(v, tuple) else v for k, v in EVENT_RANGES.items()},
        "files": {"catalog": "catalog.csv", "inventory": "stations.xml"},
        "sites": sites,
    }
    (root / "sites.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
