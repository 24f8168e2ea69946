"""A labeled dataset folder as training arrays, computed once with the station's own code.

Every window goes through :func:`edge.signal.dataset.iter_windows` (the station's preprocessing),
:func:`edge.signal.preprocess.normalize`, :func:`edge.signal.features.bossea_features` and
:func:`edge.signal.features.attributes`: what the model sees in training is byte for byte what the
station computes. Results are cached (``.npz``) keyed by the labels file, the waveform files'
sizes and times, the window spec and the classes, so a second run over the same folder is
instant.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.signal.dataset import LABELS_FILE, RowError, iter_windows, read_labels
from edge.signal.features import (
    ATTRIBUTES,
    BOSSEA_FEATURES,
    attributes,
    bossea_features,
)
from edge.signal.labels import CLASSES
from edge.signal.preprocess import LOG_PEAK_QUANTILES, PreprocessError, WindowSpec, normalize
from trainer.progress import progress_bar

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: windows from StationXML have the full response removed (edge.signal.instrument)


@dataclass
class EventArrays:
    """N events of one dataset, as arrays (row ``i`` of every field is event ``i``)."""

    #: (N, 3, n) float32: Z, N, E divided by the window's peak (|x| <= 1)
    x: np.ndarray
    #: (N,) float32: log10 of that peak (m/s when the folder has stations.xml, else counts)
    log_peak: np.ndarray
    #: (N,) int64: index into ``classes``; -1 when the row has no label
    y: np.ndarray
    #: (N,) float32: local magnitude ML; NaN when unknown
    magnitude: np.ndarray
    #: (N, len(ATTRIBUTES)) float32: seismic attributes (self-supervised targets)
    attributes: np.ndarray
    #: (N, 8) float64: Bossea's eight features
    features: np.ndarray
    paths: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    classes: tuple[str, ...] = CLASSES
    units: str = "counts"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def finite(self) -> np.ndarray:
        """(N,) bool: the event's model input (every sample of ``x`` and ``log_peak``) is finite."""
        return np.isfinite(self.x).all(axis=(1, 2)) & np.isfinite(self.log_peak)

    def subset(self, idx: Sequence[int] | np.ndarray) -> EventArrays:
        """The events at ``idx`` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return EventArrays(
            x=self.x[idx], log_peak=self.log_peak[idx], y=self.y[idx],
            magnitude=self.magnitude[idx], attributes=self.attributes[idx],
            features=self.features[idx], paths=[self.paths[i] for i in idx],
            lines=[self.lines[i] for i in idx], classes=self.classes, units=self.units)

    def class_counts(self) -> dict[str, int]:
        return {c: int(np.sum(self.y == i)) for i, c in enumerate(self.classes)}

    @classmethod
    def concatenate(cls, parts: Sequence[EventArrays]) -> EventArrays:
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        if any(p.classes != first.classes for p in parts):
            raise ValueError("datasets with different classes")
        return cls(
            x=np.concatenate([p.x for p in parts]), log_peak=np.concatenate([p.log_peak for p in parts]),
            y=np.concatenate([p.y for p in parts]), magnitude=np.concatenate([p.magnitude for p in parts]),
            attributes=np.concatenate([p.attributes for p in parts]),
            features=np.concatenate([p.features for p in parts]),
            paths=[q for p in parts for q in p.paths], lines=[q for p in parts for q in p.lines],
            classes=first.classes, units=first.units)


def log_peak_quantiles(log_peak: np.ndarray) -> list[float]:
    """Quantiles (:data:`~edge.signal.preprocess.LOG_PEAK_QUANTILES`) of training windows'
    ``log10(peak)`` (their units), rounded to 1e-4: what a run and its bundle record."""
    lp = np.asarray(log_peak, np.float64)
    lp = lp[np.isfinite(lp)]
    if lp.size == 0:
        return []
    return [round(float(v), 4) for v in np.quantile(lp, LOG_PEAK_QUANTILES)]


def dataset_description(folder: str | os.PathLike[str]) -> dict:
    """What a model trained on this folder should say about its data (``synth.json`` if any)."""
    folder = Path(folder)
    meta_path = folder / "synth.json"
    desc = {"path": str(folder.resolve()), "synthetic": False}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        desc.update(synthetic=bool(meta.get("synthetic", True)), generator=meta)
    return desc


def _cache_key(folder: Path, spec: WindowSpec, classes: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "spec": spec.to_dict(), "classes": list(classes),
                         "attributes": list(ATTRIBUTES), "features": list(BOSSEA_FEATURES)},
                        sort_keys=True).encode())
    h.update((folder / LABELS_FILE).read_bytes())
    rows, _ = read_labels(folder, check_files=False)
    for row in rows:
        try:
            st = os.stat(folder / row.path)
            h.update(f"{row.path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{row.path}:missing".encode())
    for extra in ("stations.xml",):
        p = folder / extra
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    base = os.environ.get("MICROSEIS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "microseis")
    return Path(base)


def load_dataset(
    folder: str | os.PathLike[str],
    spec: WindowSpec | None = None,
    classes: Sequence[str] = CLASSES,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    require_labels: bool = True,
    progress: bool = True,
) -> tuple[EventArrays, list[RowError]]:
    """Load a dataset folder (``docs/spec/dataset.md``) into :class:`EventArrays`.

    Rows that cannot be used are returned as :class:`RowError` (file and line), never raised:
    unreadable files, missing components, NaNs, constant traces, unknown labels (not in
    ``classes``), and — with ``require_labels`` — rows without a label.
    """
    folder = Path(folder)
    spec = spec or WindowSpec()
    classes = tuple(classes)
    cache_file = None
    if use_cache:
        cache_file = Path(cache_dir or default_cache_dir()) / (
            f"{folder.resolve().name}-{_cache_key(folder, spec, classes)}-{int(require_labels)}.npz")
        if cache_file.is_file():
            try:
                return _read_cache(cache_file, classes)
            except Exception as exc:  # a broken cache is rebuilt, never trusted
                log.warning("ignoring unreadable cache %s: %s", cache_file, exc)

    errors: list[RowError] = []
    rows_total = len(read_labels(folder, check_files=False)[0])
    xs, peaks, ys, mags, attrs, feats, paths, lines = [], [], [], [], [], [], [], []
    units = "counts"
    index = {c: i for i, c in enumerate(classes)}
    bar = progress_bar(rows_total, f"loading {folder.name}", progress, unit="event", mininterval=1.0)
    for row, window in iter_windows(folder, spec, errors=errors):
        bar.update(1)
        if row.label is None and require_labels:
            errors.append(RowError(row.line, row.path, "no label"))
            continue
        if row.label is not None and row.label not in index:
            errors.append(RowError(row.line, row.path,
                                   f"unknown label {row.label!r} (classes: {', '.join(classes)})"))
            continue
        try:
            x, log_peak = normalize(window.data)
        except PreprocessError as exc:
            errors.append(RowError(row.line, row.path, str(exc)))
            continue
        xs.append(x)
        peaks.append(log_peak)
        ys.append(index[row.label] if row.label is not None else -1)
        mags.append(np.nan if row.magnitude is None else row.magnitude)
        attrs.append(attributes(window))
        feats.append(bossea_features(window))
        paths.append(row.path)
        lines.append(row.line)
        units = window.units
    bar.close()
    n = spec.n_samples
    arrays = EventArrays(
        x=np.stack(xs).astype(np.float32) if xs else np.zeros((0, 3, n), np.float32),
        log_peak=np.asarray(peaks, np.float32), y=np.asarray(ys, np.int64),
        magnitude=np.asarray(mags, np.float32),
        attributes=np.stack(attrs).astype(np.float32) if attrs else np.zeros((0, len(ATTRIBUTES)), np.float32),
        features=np.stack(feats) if feats else np.zeros((0, len(BOSSEA_FEATURES))),
        paths=paths, lines=lines, classes=classes, units=units)
    if cache_file is not None:
        _write_cache(cache_file, arrays, errors)
    return arrays, errors


def _write_cache(path: Path, arrays: EventArrays, errors: list[RowError]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    meta = {"paths": arrays.paths, "lines": arrays.lines, "classes": list(arrays.classes),
            "units": arrays.units, "errors": [[e.line, e.path, e.message] for e in errors]}
    np.savez(tmp, x=arrays.x, log_peak=arrays.log_peak, y=arrays.y, magnitude=arrays.magnitude,
             attributes=arrays.attributes, features=arrays.features,
             meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    os.replace(tmp, path)


def _read_cache(path: Path, classes: tuple[str, ...]) -> tuple[EventArrays, list[RowError]]:
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if tuple(meta["classes"]) != classes:
            raise ValueError("classes differ")
        arrays = EventArrays(x=z["x"], log_peak=z["log_peak"], y=z["y"], magnitude=z["magnitude"],
                             attributes=z["attributes"], features=z["features"],
                             paths=meta["paths"], lines=meta["lines"], classes=classes,
                             units=meta["units"])
    errors = [RowError(line, p, msg) for line, p, msg in meta["errors"]]
    for e in errors:
        log.warning("%s", e)
    return arrays, errors


__all__ = ["EventArrays", "load_dataset", "dataset_description", "default_cache_dir", "log_peak_quantiles"]
