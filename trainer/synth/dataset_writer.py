"""Writes the dataset folder of ``docs/spec/dataset.md``.

::

    DIR/
      labels.csv        path,label,magnitude,trigger_time,station   (the dataset spec)
      waveforms/ev00000.mseed …   one event per file: Z, N, E int32 counts, Steim-2 MiniSEED
      stations.xml      StationXML with the full responses (needed for ML)
      truth.csv         generator ground truth per event (subtype, SNR, distance, S-P, …)
      synth.json        seed, every parameter, per-class counts, versions, "synthetic": true

Nothing time-dependent is written (no creation date), so the same config gives identical
bytes. Paths in the CSVs are relative to DIR with forward slashes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DatasetExistsError",
    "DatasetWriter",
    "LABEL_COLUMNS",
    "TRUTH_COLUMNS",
    "event_relpath",
    "event_rows",
    "format_time",
    "format_value",
    "write_event",
]

LABEL_COLUMNS = ("path", "label", "magnitude", "trigger_time", "station")
TRUTH_COLUMNS = (
    "path", "label", "subtype", "station", "trigger_time", "s_time", "snr_db", "noise_rms_m_s",
    "noise_beta", "noise_tone_hz", "duration_s", "peak_freq_hz", "magnitude", "distance_km",
    "s_minus_p_s", "corner_hz", "stress_drop_mpa", "ml_brune", "attempts", "backazimuth_deg",
    "preamp_gain", "sensitivity", "record_s", "clipped",
)
OUTPUT_FILES = ("labels.csv", "truth.csv", "stations.xml", "synth.json")


class DatasetExistsError(FileExistsError):
    """The output folder is not empty and ``force`` was not given."""


def format_time(t: Any) -> str:
    """ISO 8601 UTC with microseconds and ``Z`` (``2025-01-01T03:12:45.124000Z``)."""
    return t.datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_relpath(index: int, n_events: int) -> str:
    width = max(5, len(str(max(0, n_events - 1))))
    return f"waveforms/ev{index:0{width}d}.mseed"


def write_event(root: str | os.PathLike, relpath: str, stream: Any) -> None:
    path = Path(root) / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.write(str(path), format="MSEED", encoding="STEIM2", reclen=4096)


def format_value(v: Any) -> str:
    """A CSV cell: "" for None or non-finite, true/false, 6 significant digits, ISO time."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.6g}"
    if hasattr(v, "datetime"):
        return format_time(v)
    return str(v)


def event_rows(ev: Any, relpath: str) -> dict[str, Any]:
    """Rows of one generated event (:class:`~trainer.synth.generate.EventResult`)."""
    mag = "" if ev.magnitude is None else f"{ev.magnitude:.2f}"
    label_row = {
        "path": relpath, "label": ev.label, "magnitude": mag,
        "trigger_time": format_time(ev.trigger_time), "station": ev.station,
    }
    t = dict(ev.truth)
    t.update({"path": relpath, "label": ev.label, "station": ev.station,
              "trigger_time": ev.trigger_time, "magnitude": ev.magnitude})
    if "ml_brune" in t:
        t["ml_brune"] = round(float(t["ml_brune"]), 3)
    truth_row = {k: format_value(t.get(k)) for k in TRUTH_COLUMNS}
    return {"label_row": label_row, "truth_row": truth_row, "label": ev.label,
            "magnitude": ev.magnitude, "subtype": t.get("subtype", ""), "ml_brune": t.get("ml_brune")}


def _csv_bytes(columns: Iterable[str], rows: Iterable[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode("utf-8")


class DatasetWriter:
    """The output folder; :meth:`prepare` first, then events, then :meth:`finish`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def prepare(self, force: bool = False) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DatasetExistsError(f"{self.root} exists and is not a folder")
        if self.root.is_dir() and any(self.root.iterdir()):
            if not force:
                raise DatasetExistsError(f"{self.root} is not empty (use --force to overwrite)")
            for name in OUTPUT_FILES:
                p = self.root / name
                if p.is_file():
                    p.unlink()
            wf = self.root / "waveforms"
            if wf.is_dir():
                for p in wf.glob("ev*.mseed"):
                    p.unlink()
        (self.root / "waveforms").mkdir(parents=True, exist_ok=True)

    def write_inventory(self, inventory: Any) -> None:
        inventory.write(str(self.root / "stations.xml"), format="STATIONXML", validate=True)

    def finish(self, cfg: Any, results: list[dict[str, Any]], sites: list[Any] | None = None) -> dict[str, Any]:
        """Write the CSVs and ``synth.json``; ``sites`` (drawn sites, ``--sites train|other``)
        go into ``synth.json`` as ``"sites"`` and set ``sampling_rate`` to ``"per site"``."""
        import numpy as np
        import obspy
        import scipy

        from edge import __version__

        (self.root / "labels.csv").write_bytes(_csv_bytes(LABEL_COLUMNS, (r["label_row"] for r in results)))
        (self.root / "truth.csv").write_bytes(_csv_bytes(TRUTH_COLUMNS, (r["truth_row"] for r in results)))
        counts = Counter(r["label"] for r in results)
        mags = [r["magnitude"] for r in results if r["magnitude"] is not None]
        dml = [r["ml_brune"] - r["magnitude"] for r in results
               if r["magnitude"] is not None and r.get("ml_brune") is not None]
        sub = Counter(r["subtype"] for r in results if r["label"] == "noise")
        from .config import CLASSES

        summary: dict[str, Any] = {
            "synthetic": True,
            "generator": "trainer.synth",
            "software": {"microseis-edge": __version__, "numpy": np.__version__,
                         "scipy": scipy.__version__, "obspy": obspy.__version__},
            "seed": cfg.seed,
            "n_events": len(results),
            "counts": {c: counts.get(c, 0) for c in CLASSES},
            "noise_subtypes": dict(sorted(sub.items())),
            "magnitude": ({"min": min(mags), "max": max(mags), "mean": round(float(np.mean(mags)), 3)}
                          if mags else None),
            "brune_ml_minus_label": ({"mean": round(float(np.mean(dml)), 3), "std": round(float(np.std(dml)), 3)}
                                     if dml else None),
            "sampling_rate": cfg.sampling_rate if sites is None else "per site",
            "files": {"labels": "labels.csv", "truth": "truth.csv", "inventory": "stations.xml",
                      "waveforms": "waveforms/"},
            "config": cfg.to_dict(),
        }
        if sites is not None:
            summary["site_split"] = cfg.site_mode
            summary["sites"] = [s.to_dict() for s in sites]
        (self.root / "synth.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n",
                                              encoding="utf-8")
        return summary
