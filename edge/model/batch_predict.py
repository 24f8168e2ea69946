"""Batch classification of waveform files or dataset folders -> one CSV row per event
(``microseis predict``, the "batch SAC -> CSV" workflow). Station side: no torch.

Inputs (:func:`expand_inputs`):

* a **dataset folder** (holds ``labels.csv``, ``docs/spec/dataset.md``): one row per
  ``labels.csv`` row, in file order; the label's ``trigger_time`` is used
  (``trigger_source = "label"``) and picked with :func:`edge.signal.picking.pick_trigger` when
  empty (``"picked"``); the folder's ``stations.xml`` calibrates to m/s unless
  ``--sensitivity``/``--stationxml`` say otherwise;
* **loose waveform files** (any format ``obspy.read`` opens) and **directories** of them
  (searched recursively; hidden files and obvious non-waveform files such as ``*.csv`` are
  skipped there, never when named on the command line). The files' traces are split by
  station (``NET.STA.LOC``) and grouped into one event per station and overlapping time span,
  so ``ev.BHZ.SAC ev.BHN.SAC ev.BHE.SAC`` make one event. The trigger is picked on Z
  (``trigger_source = "picked"``).

Every event is cut and filtered by :func:`edge.signal.preprocess.preprocess_stream` with the
bundle's window contract and classified by :class:`edge.model.inference.EventClassifier`, many
windows per model call. Each window gets the MC-dropout noise that
:meth:`EventClassifier.predict_window` gives it (window index 0), so an event's numbers do
not depend on which other files were in the batch and equal what the station daemon reports.

A file that cannot be read, a group without Z, a trigger that cannot be found, a window
that cannot be made: a row with the reason in ``note`` and an empty ``class``; the batch
goes on.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import obspy
from obspy import Inventory, Stream, UTCDateTime

from edge.model.inference import EventClassifier
from edge.signal.dataset import (
    LABELS_FILE,
    DatasetError,
    LabeledEvent,
    RowError,
    load_event,
    read_labels,
    read_stations,
    response_for,
)
from edge.signal.picking import TriggerPick, pick_trigger
from edge.signal.preprocess import PreprocessError, Window, WindowSpec, component_of, preprocess_stream

__all__ = [
    "BatchOptions",
    "BatchPredictor",
    "BatchSummary",
    "EventJob",
    "FileGroup",
    "InputItem",
    "csv_columns",
    "expand_inputs",
    "file_jobs",
    "dataset_jobs",
    "group_files",
    "load_group",
]

#: Suffixes skipped when walking a directory (a file named on the command line is always tried).
SKIP_SUFFIXES = frozenset({
    ".csv", ".xml", ".json", ".md", ".txt", ".py", ".msb", ".pub", ".key", ".png", ".jpg",
    ".pdf", ".html", ".npz", ".npy", ".h5", ".hdf5", ".onnx", ".tflite", ".log", ".toml", ".yaml",
    ".yml", ".zip", ".tar",
})

#: Note added to every row whose window stayed in counts.
COUNTS_NOTE = ("no instrument sensitivity (give --sensitivity or --stationxml): the model got "
               "counts, magnitude left empty")


@dataclass(frozen=True)
class BatchOptions:
    """How events are found and calibrated.

    Attributes:
        station: ``NET.STA`` to keep (files with several stations; dataset rows without a
            ``station`` column value), ``None`` = every station.
        sensitivity: one overall sensitivity for every channel, counts per m/s.
        inventory: StationXML with the channels' responses (sensitivity per channel).
        format: ``obspy.read`` format of loose files, ``None`` = autodetect.
        chunk: windows per model call (memory: ~36 kB per window of 3 x 3000 samples).
    """

    station: str | None = None
    sensitivity: float | None = None
    inventory: Inventory | None = None
    format: str | None = None
    chunk: int = 64


@dataclass(frozen=True)
class InputItem:
    """One PATH argument after expansion: a dataset folder or a waveform file.

    Attributes:
        kind: ``"dataset"``, ``"file"`` or ``"missing"`` (does not exist).
        path: the folder or file.
        order: position in the expanded input list (sort key of the output rows).
    """

    kind: str
    path: Path
    order: int


@dataclass
class EventJob:
    """One output row in the making.

    Attributes:
        path: the waveform file (``;``-joined when an event spans several files).
        station: ``NET.STA``, ``""`` when unknown.
        trigger_time: trigger-on time (UTC) or ``None``.
        trigger_source: ``"label"`` (from ``labels.csv``) or ``"picked"`` (STA/LTA).
        label: class name from ``labels.csv`` (``""`` for loose files).
        window: the preprocessed window, ``None`` on error.
        notes: remarks, joined into the ``note`` column.
        error: why the event was not classified (``None`` when it was).
    """

    path: str
    station: str = ""
    trigger_time: UTCDateTime | None = None
    trigger_source: str = ""
    label: str = ""
    window: Window | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class BatchSummary:
    """What a batch did (the ``--json`` object of ``microseis predict``).

    Attributes:
        out: the CSV written.
        rows: data rows in it.
        classified: rows with a class.
        errors: rows without (reason in ``note``).
        by_class: classified rows per class (every class of the bundle, zeros included).
        seconds: wall time of the batch, s.
    """

    out: str
    rows: int = 0
    classified: int = 0
    errors: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"out": self.out, "rows": self.rows, "classified": self.classified,
                "errors": self.errors, "by_class": dict(self.by_class), "seconds": round(self.seconds, 3)}


# --------------------------------------------------------------------------- inputs


def _is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / LABELS_FILE).is_file()


def _walk(folder: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` under ``folder``, recursively, sorted: dataset folders (not entered)
    and waveform candidates; hidden entries and :data:`SKIP_SUFFIXES` skipped."""
    out: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        if here != folder and LABELS_FILE in files:
            out.append(("dataset", here))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            p = here / name
            if name.startswith(".") or p.suffix.lower() in SKIP_SUFFIXES:
                continue
            out.append(("file", p))
    return out


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[InputItem]:
    """PATH arguments -> dataset folders and waveform files, in argument order (a directory
    that is not a dataset is walked recursively; a dataset folder found inside it is used as
    a dataset). The same file named twice is kept once."""
    items: list[InputItem] = []
    seen: set[Path] = set()

    def add(kind: str, p: Path) -> None:
        key = p.resolve()
        if key in seen:
            return
        seen.add(key)
        items.append(InputItem(kind, p, len(items)))

    for arg in paths:
        p = Path(arg)
        if _is_dataset(p):
            add("dataset", p)
        elif p.is_dir():
            for kind, f in _walk(p):
                add(kind, f)
        elif p.is_file():
            add("file", p)
        else:
            add("missing", p)
    return items


# --------------------------------------------------------------------------- loose files


@dataclass
class _Piece:
    """The traces of one station (``NET.STA.LOC``) in one file, from a header-only read."""

    item: InputItem
    key: tuple[str, str, str]
    t0: UTCDateTime
    t1: UTCDateTime


@dataclass
class FileGroup:
    """Files that together hold one station's event.

    Attributes:
        station: ``(network, station, location)``.
        items: the files, in input order.
        t0, t1: the union of their time spans (UTC).
    """

    station: tuple[str, str, str]
    items: list[InputItem]
    t0: UTCDateTime
    t1: UTCDateTime

    @property
    def order(self) -> int:
        return min(i.order for i in self.items)

    @property
    def path(self) -> str:
        return ";".join(str(i.path) for i in sorted(self.items, key=lambda i: i.order))


def _read(path: Path, fmt: str | None, headonly: bool = False) -> Stream:
    """``obspy.read`` with one-line reasons (raises :class:`DatasetError`)."""
    if path.stat().st_size == 0:
        raise DatasetError("empty file (0 bytes)")
    try:
        st = obspy.read(str(path), format=fmt, headonly=headonly)
    except Exception as exc:  # obspy raises TypeError, ValueError, struct.error, ...
        raise DatasetError(f"unreadable: {type(exc).__name__}: {exc}") from None
    if len(st) == 0:
        raise DatasetError("empty file: no traces")
    return st


def _station_name(key: tuple[str, str, str]) -> str:
    return f"{key[0]}.{key[1]}"


def group_files(items: Iterable[InputItem], opts: BatchOptions
                ) -> tuple[list[FileGroup], list[tuple[int, EventJob]]]:
    """Read the headers of loose files and group them into events.

    Traces are split by ``NET.STA.LOC``; per station, files whose time spans overlap join
    one group. Returns ``(groups, error_rows)``; an error row's ``order`` is kept in
    ``EventJob.notes``-free form by the caller through :func:`file_jobs`.
    """
    pieces: list[_Piece] = []
    errors: list[tuple[int, EventJob]] = []
    for item in items:
        try:
            st = _read(item.path, opts.format, headonly=True)
        except (DatasetError, OSError) as exc:
            errors.append((item.order, EventJob(str(item.path), error=str(exc))))
            continue
        by_key: dict[tuple[str, str, str], list] = {}
        for tr in st:
            s = tr.stats
            by_key.setdefault((s.network, s.station, s.location), []).append(tr)
        if opts.station is not None:
            names = sorted({_station_name(k) for k in by_key})
            by_key = {k: v for k, v in by_key.items() if _station_name(k) == opts.station}
            if not by_key:
                errors.append((item.order, EventJob(
                    str(item.path), error=f"station {opts.station} not in file (has {', '.join(names)})")))
                continue
        for key, traces in by_key.items():
            t0 = min(tr.stats.starttime for tr in traces)
            t1 = max(tr.stats.endtime for tr in traces)
            pieces.append(_Piece(item, key, t0, t1))

    groups: list[FileGroup] = []
    for key in sorted({p.key for p in pieces}):
        mine = sorted((p for p in pieces if p.key == key), key=lambda p: (p.t0, p.item.order))
        current: FileGroup | None = None
        for p in mine:
            if current is not None and p.t0 <= current.t1:
                if p.item not in current.items:
                    current.items.append(p.item)
                current.t1 = max(current.t1, p.t1)
                continue
            current = FileGroup(key, [p.item], p.t0, p.t1)
            groups.append(current)
    groups.sort(key=lambda g: (g.order, g.t0))
    return groups, errors


def _calibration(st: Stream, t: UTCDateTime, spec: WindowSpec, opts: BatchOptions,
                 inventory: Inventory | None) -> dict[str, Any]:
    """Keyword arguments of :func:`preprocess_stream` that give m/s: the scalar
    ``sensitivity`` (counts per m/s), or each channel's full ``response`` from the inventory
    (removed to velocity, right for geophones below their corner and accelerometers), or
    nothing (counts)."""
    if opts.sensitivity is not None:
        return {"sensitivity": float(opts.sensitivity)}
    if inventory is None:
        return {}
    ids = sorted({tr.id for tr in st if component_of(tr.stats.channel) in spec.components})
    return {"response": {seed_id: response_for(inventory, seed_id, t) for seed_id in ids}}


def _pick_notes(pick: TriggerPick) -> list[str]:
    """A remark when the STA/LTA never crossed the threshold (the onset is uncertain)."""
    if pick.method == "peak":
        return [f"no STA/LTA threshold crossing: trigger at the STA/LTA peak ({pick.ratio:.1f}), onset uncertain"]
    return []


def check_component_rates(st: Stream, spec: WindowSpec) -> None:
    """Refuse components that cannot carry the model's band: a sampling rate whose Nyquist
    frequency is at or below ``spec.freqmin`` (e.g. a 1 Hz channel next to 250 Hz ones) holds
    nothing the model looks at, and resampling it up would only invent a window. The message
    names every channel and its rate.

    Raises:
        DatasetError: naming the channels and rates.
    """
    rates = {tr.id: float(tr.stats.sampling_rate) for tr in st}
    low = sorted(i for i, r in rates.items() if not r / 2.0 > spec.freqmin)
    if low:
        listing = ", ".join(f"{i} {rates[i]:g} Hz" for i in sorted(rates))
        raise DatasetError(f"sampling rate too low for the model: {', '.join(low)} (Nyquist "
                           f"{min(rates[i] for i in low) / 2:g} Hz at or below the model band's "
                           f"{spec.freqmin:g} Hz); components: {listing}")


def load_group(group: FileGroup, spec: WindowSpec, opts: BatchOptions) -> EventJob:
    """Read a group's files, pick the trigger on Z and preprocess (never raises)."""
    job = EventJob(group.path, station=_station_name(group.station), trigger_source="picked")
    try:
        st = Stream()
        for item in group.items:
            st += _read(item.path, opts.format)
        net, sta, loc = group.station
        st = st.select(network=net, station=sta, location=loc)
        st = Stream([tr for tr in st if tr.stats.endtime >= group.t0 and tr.stats.starttime <= group.t1])
        if not any(component_of(tr.stats.channel) == "Z" and tr.stats.npts > 0 for tr in st):
            raise DatasetError(f"no Z component (channels: {', '.join(sorted({tr.id for tr in st}))})")
        check_component_rates(st, spec)
        pick = pick_trigger(st)
        job.trigger_time = pick.time
        job.notes.extend(_pick_notes(pick))
        job.window = preprocess_stream(st, job.trigger_time, spec,
                                       **_calibration(st, job.trigger_time, spec, opts, opts.inventory))
    except (DatasetError, PreprocessError) as exc:
        job.error = str(exc)
    except Exception as exc:  # never let one file stop the batch
        job.error = f"{type(exc).__name__}: {exc}"
    return job


def file_jobs(items: list[InputItem], spec: WindowSpec, opts: BatchOptions) -> Iterator[tuple[int, EventJob]]:
    """``(order, job)`` of the loose files, groups loaded lazily (one event in memory)."""
    groups, errors = group_files(items, opts)
    pending: list[tuple[int, int, EventJob | FileGroup]] = [(o, 0, j) for o, j in errors]
    pending += [(g.order, 1, g) for g in groups]
    pending.sort(key=lambda p: (p[0], p[1]))
    for order, _, what in pending:
        yield order, what if isinstance(what, EventJob) else load_group(what, spec, opts)

# --------------------------------------------------------------------------- datasets


def dataset_jobs(folder: Path, spec: WindowSpec, opts: BatchOptions) -> Iterator[EventJob]:
    """One job per ``labels.csv`` row, in file order (bad rows become error rows)."""
    try:
        rows, row_errors = read_labels(folder, check_files=False)
        inventory = opts.inventory
        if inventory is None and opts.sensitivity is None:
            inventory = read_stations(folder)
    except DatasetError as exc:
        yield EventJob(str(folder), error=str(exc))
        return
    entries: list[tuple[int, LabeledEvent | RowError]] = [(r.line, r) for r in rows]
    entries += [(e.line, e) for e in row_errors]
    entries.sort(key=lambda e: e[0])
    for _, entry in entries:
        if isinstance(entry, RowError):
            yield EventJob(str(folder / entry.path) if entry.path else str(folder),
                           error=f"{LABELS_FILE} line {entry.line}: {entry.message}")
            continue
        yield _load_row(folder, entry, spec, opts, inventory)


def _load_row(folder: Path, row: LabeledEvent, spec: WindowSpec, opts: BatchOptions,
              inventory: Inventory | None) -> EventJob:
    if row.station is None and opts.station is not None:
        row = dataclasses.replace(row, station=opts.station)
    job = EventJob(str(folder / row.path), station=row.station or "", label=row.label or "",
                   trigger_time=row.trigger_time, trigger_source="label" if row.trigger_time else "picked")
    picked: list[TriggerPick] = []

    def finder(st: Stream) -> UTCDateTime:
        picked.append(pick_trigger(st))
        return picked[-1].time

    try:
        window = load_event(folder, row, spec, finder, inventory)
        if opts.sensitivity is not None:  # calibration is the last, linear step
            window = dataclasses.replace(window, data=(window.data / np.float32(opts.sensitivity)),
                                         units="m/s")
        job.window = window
    except (DatasetError, PreprocessError) as exc:
        job.error = f"{LABELS_FILE} line {row.line}: {exc}"
    except Exception as exc:  # never let one row stop the batch
        job.error = f"{LABELS_FILE} line {row.line}: {type(exc).__name__}: {exc}"
    if picked:
        job.trigger_time = picked[-1].time
        job.notes.extend(_pick_notes(picked[-1]))
    if job.window is not None and not job.station:
        z = job.window.channels[0] if job.window.channels else ""
        job.station = ".".join(z.split(".")[:2]) if z else ""
    return job


# --------------------------------------------------------------------------- the batch


def csv_columns(classes: Iterable[str]) -> list[str]:
    """Output columns for a bundle with ``classes``."""
    return (["path", "station", "trigger_time", "trigger_source", "class"]
            + [f"p_{c}" for c in classes]
            + ["uncertainty", "mutual_information", "magnitude", "units", "note", "label"])


def _iso(t: UTCDateTime | None) -> str:
    if t is None:
        return ""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BatchPredictor:
    """Classify many events with one loaded :class:`EventClassifier` and write the CSV.

    Args:
        classifier: the loaded, verified bundle. Its predictor is changed to give every
            window the MC noise of window 0 (see :meth:`_pin_noise`).
        options: see :class:`BatchOptions`.
        progress: called with ``(done, total, seconds)`` every ``progress_every`` events.
        progress_every: events between progress calls.
    """

    def __init__(self, classifier: EventClassifier, options: BatchOptions | None = None,
                 progress: Callable[[int, int, float], None] | None = None, progress_every: int = 50) -> None:
        self.clf = classifier
        self.opts = options or BatchOptions()
        self.progress = progress
        self.progress_every = max(1, int(progress_every))
        self.spec = classifier.window_spec
        self.model_units = classifier.bundle.manifest.training_data.get("units")
        self._pin_noise()

    def _pin_noise(self) -> None:
        """Give every window of a call the noise of window 0 (what ``predict_window`` uses),
        so results do not depend on a window's position in the batch."""
        pred = self.clf.predictor
        if not pred.noise:
            return
        base = pred.noise_for(0, 1)  # (passes, 1, D)
        pred.noise_for = lambda first, n: np.repeat(base, n, axis=1)  # type: ignore[method-assign]

    # ------------------------------------------------------------------ jobs
    def jobs(self, paths: Iterable[str | os.PathLike]) -> Iterator[EventJob]:
        """Every output row's job, in input order (datasets row by row, loose files by group)."""
        items = expand_inputs(paths)
        loose = [i for i in items if i.kind == "file"]
        loose_iter = file_jobs(loose, self.spec, self.opts) if loose else iter(())
        nxt = next(loose_iter, None)
        for item in items:
            while nxt is not None and nxt[0] <= item.order:
                yield nxt[1]
                nxt = next(loose_iter, None)
            if item.kind == "dataset":
                yield from dataset_jobs(item.path, self.spec, self.opts)
            elif item.kind == "missing":
                yield EventJob(str(item.path), error="file not found")
        while nxt is not None:
            yield nxt[1]
            nxt = next(loose_iter, None)

    # ------------------------------------------------------------------ running
    def run(self, paths: Iterable[str | os.PathLike], out: TextIO, out_name: str = "") -> BatchSummary:
        """Classify every event under ``paths`` and write the CSV to ``out``."""
        started = time.monotonic()
        summary = BatchSummary(out=out_name, by_class={c: 0 for c in self.clf.classes})
        writer = csv.DictWriter(out, fieldnames=csv_columns(self.clf.classes), lineterminator="\n")
        writer.writeheader()
        buffer: list[EventJob] = []
        n_windows = 0
        for job in self.jobs(paths):
            buffer.append(job)
            n_windows += job.window is not None
            if n_windows >= self.opts.chunk:
                self._flush(buffer, writer, summary, started)
                buffer, n_windows = [], 0
        self._flush(buffer, writer, summary, started)
        summary.seconds = time.monotonic() - started
        return summary

    def _flush(self, jobs: list[EventJob], writer: csv.DictWriter, summary: BatchSummary,
               started: float) -> None:
        xs, lps, idx = [], [], []
        for k, job in enumerate(jobs):
            if job.window is None:
                continue
            try:
                x, lp = self.clf.model_input(job.window)
            except PreprocessError as exc:
                job.error, job.window = str(exc), None
                continue
            xs.append(x)
            lps.append(lp)
            idx.append(k)
        rows: dict[int, dict] = {}
        if xs:
            pred = self.clf.predict(np.stack(xs), np.asarray(lps, np.float32))
            rows = {k: self.clf.row(pred, i) for i, k in enumerate(idx)}
        for k, job in enumerate(jobs):
            writer.writerow(self._csv_row(job, rows.get(k)))
            summary.rows += 1
            if k in rows:
                summary.classified += 1
                summary.by_class[rows[k]["class"]] = summary.by_class.get(rows[k]["class"], 0) + 1
            else:
                summary.errors += 1
            if self.progress and summary.rows % self.progress_every == 0:
                self.progress(summary.rows, summary.classified, time.monotonic() - started)

    def _csv_row(self, job: EventJob, res: dict | None) -> dict:
        row = {"path": job.path, "station": job.station, "trigger_time": _iso(job.trigger_time),
               "trigger_source": job.trigger_source if job.trigger_time is not None else "",
               "class": "", "uncertainty": "", "mutual_information": "", "magnitude": "",
               "units": "", "label": job.label}
        for c in self.clf.classes:
            row[f"p_{c}"] = ""
        notes = list(job.notes)
        if res is None:
            notes.insert(0, job.error or "not classified")
        else:
            w = job.window
            assert w is not None
            row["class"] = res["class"]
            for c, p in res["probabilities"].items():
                row[f"p_{c}"] = f"{p:.6f}"
            row["uncertainty"] = f"{res['uncertainty']:.6f}"
            row["mutual_information"] = f"{res['mutual_information']:.6f}"
            row["units"] = w.units
            if w.units == "counts":
                notes.append(COUNTS_NOTE)
            elif res["magnitude"] is not None and math.isfinite(res["magnitude"]):
                row["magnitude"] = f"{res['magnitude']:.2f}"
            if self.model_units == "counts" and w.units == "m/s":
                notes.append("model trained on counts, window in m/s")
            notes.extend(w.flags)
        row["note"] = "; ".join(notes)
        return row
