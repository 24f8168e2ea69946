"""STEAD / INSTANCE style HDF5 + CSV archives as training events.

The STanford EArthquake Dataset (STEAD, Mousavi et al. 2019) ships one CSV of metadata and
one HDF5 file of waveforms:

* the CSV has one row per trace; columns used here: ``trace_name`` (the HDF5 key),
  ``trace_category`` (``earthquake_local`` or ``noise``), ``trace_start_time``,
  ``p_arrival_sample`` (empty for noise), ``s_arrival_sample``, ``source_magnitude``,
  ``source_magnitude_type`` (``ml``, ``md``, ``mb``, …), ``network_code``,
  ``receiver_code``, ``receiver_type`` (instrument code, e.g. ``HH``, ``EH``, ``HN``).
  Other columns are kept in :attr:`SteadRow.fields` and otherwise ignored. INSTANCE's names
  (``trace_P_arrival_sample``, ``station_code``, ``station_network_code``,
  ``station_channels``, …) are accepted as aliases (:data:`COLUMN_ALIASES`);
* the HDF5 file has a group ``data/`` with one dataset per ``trace_name``: shape
  ``(6000, 3)`` (STEAD; ``(3, n)`` as in INSTANCE is transposed), float counts, components in
  the order E, N, Z, sampled at 100 Hz (60 s). Dataset attributes repeat the CSV fields;
  this reader takes the CSV as the authority and does not read them.

:func:`iter_stead` turns each selected row into an ObsPy ``Stream`` of three traces
``NET.STA..{receiver_type}E/N/Z`` (``HH`` when ``receiver_type`` is empty) starting at
``trace_start_time`` with the archive's sampling rate, and a trigger time
``trace_start_time + p_arrival_sample / sampling_rate``. Noise rows have no P: their trigger
is the station's own STA/LTA pick (:func:`edge.signal.picking.find_trigger`, what the station
would have classified), moved where needed so that the whole window (``pre_s`` before to
``length_s - pre_s`` after, plus the margin) lies inside the trace; ``noise_trigger_s``
fixes it instead at that many seconds after the trace start.

:func:`load_stead` runs every stream through the station's preprocessing
(:func:`edge.signal.preprocess.preprocess_stream`, resampling 100 Hz to the spec's rate),
:func:`edge.signal.preprocess.normalize`, :func:`edge.signal.features.bossea_features` and
:func:`edge.signal.features.attributes` — the same chain as :func:`trainer.data.load_dataset` — and
returns :class:`trainer.data.EventArrays` with labels ``earthquake`` (``earthquake_local``,
magnitude from ``source_magnitude``) and ``noise``.

**Units.** STEAD and INSTANCE (counts version) waveforms are raw counts and the archive holds
no instrument responses here, so windows are in counts: ``log_peak`` is log10 of counts and
``EventArrays.units == "counts"``. A magnitude model trained on it learns the gains of the
archive's instruments along with the magnitude; it does not transfer to a station in m/s
without recalibration. Also, STEAD holds nothing above 50 Hz (100 Hz sampling) while the
default window spec bandpasses 1-100 Hz at 250 Hz: spectral features differ from a 250 Hz
geophone's.

Bad rows never stop the run: a missing trace, NaN/inf in the data, an empty or invalid
``p_arrival_sample`` for an earthquake, a bad start time or magnitude, and preprocessing
failures become :class:`SteadRowError` (a :class:`edge.signal.dataset.RowError` with the CSV's
1-based line number, header = 1, and the trace name). Rows outside ``categories`` or
``magnitude_types`` are not errors: they are simply not selected.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from edge.signal.dataset import RowError, csv_rows
from edge.signal.features import ATTRIBUTES, BOSSEA_FEATURES, attributes, bossea_features
from edge.signal.labels import CLASSES
from edge.signal.preprocess import PreprocessError, Window, WindowSpec, normalize, preprocess_stream
from trainer.data import EventArrays

log = logging.getLogger(__name__)

__all__ = [
    "CATEGORY_LABELS",
    "COLUMN_ALIASES",
    "STEAD_SAMPLING_RATE",
    "SteadError",
    "SteadRow",
    "SteadRowError",
    "iter_stead",
    "load_stead",
    "windows_to_arrays",
]

#: Sampling rate of STEAD and INSTANCE waveforms, Hz.
STEAD_SAMPLING_RATE = 100.0
#: ``trace_category`` -> class label of :func:`load_stead`.
CATEGORY_LABELS = {"earthquake_local": "earthquake", "noise": "noise"}
#: Other archives' column names (lower case) -> the STEAD names this reader uses.
COLUMN_ALIASES = {
    "trace_p_arrival_sample": "p_arrival_sample",
    "trace_s_arrival_sample": "s_arrival_sample",
    "station_code": "receiver_code",
    "station_network_code": "network_code",
    "station_channels": "receiver_type",
    "path_hyp_distance_km": "source_distance_km",
}


class SteadError(ValueError):
    """The archive itself is unusable (no CSV/HDF5, no ``trace_name`` column, no ``data``)."""


@dataclass(frozen=True)
class SteadRowError(RowError):
    """A skipped row: CSV line (header = 1), trace name and why; ``source`` is the CSV name."""

    source: str = "metadata.csv"

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.source} line {self.line}{where}: {self.message}"


@dataclass
class SteadRow:
    """One selected CSV row, parsed.

    Attributes:
        line: 1-based CSV line (header = 1).
        trace_name: HDF5 dataset name.
        category: ``trace_category`` (``earthquake_local``, ``noise``).
        magnitude: ``source_magnitude`` or ``None``.
        magnitude_type: ``source_magnitude_type`` (as written) or ``None``.
        start_time: ``trace_start_time``.
        trigger_time: P arrival (earthquakes) or the noise trigger (see module doc).
        p_arrival_sample, s_arrival_sample: samples from the trace start, ``None`` if empty.
        network, station: codes of the traces.
        fields: the whole CSV row (original column names).
    """

    line: int
    trace_name: str
    category: str
    magnitude: float | None
    magnitude_type: str | None
    start_time: UTCDateTime
    trigger_time: UTCDateTime
    p_arrival_sample: float | None
    s_arrival_sample: float | None
    network: str
    station: str
    fields: dict[str, str] = field(default_factory=dict, repr=False)


def _float_or_none(text: str | None) -> float | None:
    """``None`` for an empty cell or ``nan``; ``ValueError`` for text that is not a number."""
    t = (text or "").strip()
    if not t or t.lower() in ("nan", "none", "null"):
        return None
    v = float(t)
    if not math.isfinite(v):
        raise ValueError(t)
    return v


def _read_csv(csv_path: Path) -> Iterator[tuple[int, dict[str, str], dict[str, str]]]:
    """``(line, normalised cells, raw cells)`` per non-blank data row, streaming."""
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        header: list[str] | None = None
        for line, cells in csv_rows(fh):
            if header is None:
                header = [c.strip() for c in cells]
                keys = [COLUMN_ALIASES.get(h.lower(), h.lower()) for h in header]
                if "trace_name" not in keys:
                    raise SteadError(f"{csv_path} line {line}: no 'trace_name' column in the header")
                continue
            raw = dict(zip(header, cells))
            yield line, {k: v for k, v in zip(keys, cells)}, raw
        if header is None:
            raise SteadError(f"{csv_path}: empty, no header row")


def _stream(data: np.ndarray, row_cells: dict[str, str], start: UTCDateTime, fs: float,
            components: str) -> Stream:
    inst = (row_cells.get("receiver_type") or "").strip() or "HH"
    inst = inst[:2]
    net = (row_cells.get("network_code") or "").strip()
    sta = (row_cells.get("receiver_code") or "").strip()
    traces = []
    for j, comp in enumerate(components):
        tr = Trace(data=np.ascontiguousarray(data[:, j], dtype=np.float64))
        tr.stats.network, tr.stats.station, tr.stats.location = net, sta, ""
        tr.stats.channel = inst + comp
        tr.stats.starttime = start
        tr.stats.sampling_rate = fs
        traces.append(tr)
    return Stream(traces)


def _noise_trigger(st: Stream, start: UTCDateTime, n: int, fs: float, spec: WindowSpec,
                   fixed_s: float | None) -> UTCDateTime:
    if fixed_s is not None:
        return start + fixed_s
    from edge.signal.picking import find_trigger

    lo = start + spec.pre_s + spec.margin_s
    hi = start + n / fs - (spec.length_s - spec.pre_s) - spec.margin_s
    if hi < lo:  # trace shorter than a window: centre it
        return start + 0.5 * n / fs
    try:
        t = find_trigger(st)
    except PreprocessError:
        t = start + 0.5 * n / fs
    return min(max(t, lo), hi)


def iter_stead(
    hdf5_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    *,
    categories: Sequence[str] = ("earthquake_local",),
    magnitude_types: Sequence[str] | None = None,
    max_events: int | None = None,
    errors: list[RowError] | None = None,
    sampling_rate: float = STEAD_SAMPLING_RATE,
    components: str = "ENZ",
    spec: WindowSpec | None = None,
    noise_trigger_s: float | None = None,
    default_category: str | None = None,
) -> Iterator[tuple[SteadRow, Stream]]:
    """Yield ``(row, stream)`` for every selected, readable row, in CSV order.

    Args:
        hdf5_path, csv_path: the archive.
        categories: ``trace_category`` values to select.
        magnitude_types: when given, earthquake rows whose ``source_magnitude_type`` is not
            one of these (case-insensitive, e.g. ``("ml",)``) are not selected. Noise rows are
            not filtered by it.
        max_events: stop after this many yielded rows.
        errors: bad rows are appended here as :class:`SteadRowError` (and logged).
        sampling_rate: of the archive's waveforms, Hz.
        components: component letters of the data columns, in order (STEAD: ``"ENZ"``).
        spec: window spec used to keep a noise trigger's window inside the trace.
        noise_trigger_s: fixed noise trigger, seconds after the trace start (default: the
            station's STA/LTA pick).
        default_category: category of every row when the CSV has no ``trace_category``
            column (INSTANCE keeps events and noise in separate files); without it such a
            CSV raises :class:`SteadError`.

    Raises:
        SteadError: missing files, no ``trace_name`` column, no ``data`` group, no
            ``trace_category`` column and no ``default_category``.
    """
    import h5py

    hdf5_path, csv_path = Path(hdf5_path), Path(csv_path)
    for p in (hdf5_path, csv_path):
        if not p.is_file():
            raise SteadError(f"{p}: no such file")
    spec = spec or WindowSpec()
    sink = errors if errors is not None else []
    wanted = set(categories)
    mag_types = {t.lower() for t in magnitude_types} if magnitude_types else None
    components = components.upper()
    if sorted(components) != sorted("ENZ"):
        raise ValueError(f"components must be an order of E, N, Z, got {components!r}")

    def report(line: int, name: str, message: str) -> None:
        err = SteadRowError(line, name, message, csv_path.name)
        sink.append(err)
        log.warning("%s", err)

    try:
        h5 = h5py.File(hdf5_path, "r")
    except OSError as exc:
        raise SteadError(f"{hdf5_path}: not a readable HDF5 file: {exc}") from None
    with h5:
        if "data" not in h5 or not isinstance(h5["data"], h5py.Group):
            raise SteadError(f"{hdf5_path}: no 'data' group")
        group = h5["data"]
        n_yielded = 0
        for line, cells, raw in _read_csv(csv_path):
            if max_events is not None and n_yielded >= max_events:
                return
            name = (cells.get("trace_name") or "").strip()
            if "trace_category" in cells:
                category = (cells.get("trace_category") or "").strip()
            elif default_category is not None:
                category = default_category
            else:
                raise SteadError(f"{csv_path}: no 'trace_category' column; pass default_category "
                                 "(e.g. 'earthquake_local' for INSTANCE's event metadata)")
            if category not in wanted:
                continue
            is_noise = category == "noise"
            mtype = (cells.get("source_magnitude_type") or "").strip() or None
            if mag_types is not None and not is_noise and (mtype or "").lower() not in mag_types:
                continue
            if not name:
                report(line, name, "empty trace_name")
                continue
            problems = []
            try:
                magnitude = None if is_noise else _float_or_none(cells.get("source_magnitude"))
            except ValueError:
                problems.append(f"bad source_magnitude {cells.get('source_magnitude')!r}: not a number")
            try:
                p_arr = _float_or_none(cells.get("p_arrival_sample"))
            except ValueError:
                p_arr = None
                if not is_noise:
                    problems.append(f"bad p_arrival_sample {cells.get('p_arrival_sample')!r}: not a number")
            else:
                if p_arr is None and not is_noise:
                    problems.append("empty p_arrival_sample (no P pick)")
            try:
                s_arr = _float_or_none(cells.get("s_arrival_sample"))
            except ValueError:
                s_arr = None
            t_text = (cells.get("trace_start_time") or "").strip()
            try:
                start = UTCDateTime(t_text)
            except Exception:
                problems.append(f"bad trace_start_time {t_text!r}")
            if problems:
                report(line, name, "; ".join(problems))
                continue
            if name not in group:
                report(line, name, f"trace not in {hdf5_path.name}")
                continue
            try:
                data = np.asarray(group[name][()], dtype=np.float64)
            except Exception as exc:
                report(line, name, f"unreadable dataset: {type(exc).__name__}: {exc}")
                continue
            if data.ndim == 2 and data.shape[0] == 3 and data.shape[1] != 3:
                data = data.T
            if data.ndim != 2 or data.shape[1] != 3 or data.shape[0] < 2:
                report(line, name, f"unexpected data shape {data.shape}, expected (n, 3)")
                continue
            if not np.all(np.isfinite(data)):
                report(line, name, f"data contain NaN or inf ({int(np.sum(~np.isfinite(data)))} samples)")
                continue
            n = data.shape[0]
            if not is_noise and not 0 <= p_arr < n:
                report(line, name, f"p_arrival_sample {p_arr:g} outside the trace (0..{n - 1})")
                continue
            st = _stream(data, cells, start, sampling_rate, components)
            if is_noise:
                trigger = _noise_trigger(st, start, n, sampling_rate, spec, noise_trigger_s)
            else:
                trigger = start + p_arr / sampling_rate
            row = SteadRow(line=line, trace_name=name, category=category, magnitude=magnitude,
                           magnitude_type=mtype, start_time=start, trigger_time=trigger,
                           p_arrival_sample=p_arr, s_arrival_sample=s_arr,
                           network=st[0].stats.network, station=st[0].stats.station, fields=raw)
            n_yielded += 1
            yield row, st


def windows_to_arrays(
    items: Iterable[tuple[int, str, int, float | None, Window]],
    spec: WindowSpec,
    classes: Sequence[str],
    errors: list[RowError],
    make_error=RowError,
) -> EventArrays:
    """EventArrays from preprocessed windows, the way :func:`trainer.data.load_dataset`
    builds them: ``normalize`` -> ``x``/``log_peak``, ``attributes``, ``bossea_features``.

    ``items`` yields ``(line, path, class index or -1, magnitude or None, window)``; a window
    that cannot be normalised becomes ``make_error(line, path, message)`` in ``errors``.
    """
    xs, peaks, ys, mags, attrs, feats, paths, lines = [], [], [], [], [], [], [], []
    units = "counts"
    for line, path, y, magnitude, window in items:
        try:
            x, log_peak = normalize(window.data)
            a = attributes(window)
            f = bossea_features(window)
        except (PreprocessError, ValueError) as exc:
            errors.append(make_error(line, path, str(exc)))
            continue
        xs.append(x)
        peaks.append(log_peak)
        ys.append(y)
        mags.append(np.nan if magnitude is None else magnitude)
        attrs.append(a)
        feats.append(f)
        paths.append(path)
        lines.append(line)
        units = window.units
    n = spec.n_samples
    return EventArrays(
        x=np.stack(xs).astype(np.float32) if xs else np.zeros((0, len(spec.components), n), np.float32),
        log_peak=np.asarray(peaks, np.float32), y=np.asarray(ys, np.int64),
        magnitude=np.asarray(mags, np.float32),
        attributes=np.stack(attrs).astype(np.float32) if attrs else np.zeros((0, len(ATTRIBUTES)), np.float32),
        features=np.stack(feats) if feats else np.zeros((0, len(BOSSEA_FEATURES))),
        paths=paths, lines=lines, classes=tuple(classes), units=units)


def load_stead(
    hdf5_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    spec: WindowSpec | None = None,
    classes: Sequence[str] = CLASSES,
    max_events: int | None = None,
    *,
    categories: Sequence[str] = ("earthquake_local", "noise"),
    magnitude_types: Sequence[str] | None = None,
    noise_trigger_s: float | None = None,
    default_category: str | None = None,
) -> tuple[EventArrays, list[SteadRowError]]:
    """A STEAD-like archive as :class:`EventArrays` (counts; see the module docstring).

    Labels: ``earthquake_local`` -> ``"earthquake"`` (magnitude = ``source_magnitude``),
    ``noise`` -> ``"noise"`` (magnitude NaN). ``max_events`` caps the rows read from the
    archive (events that then fail preprocessing are errors, not replaced).
    ``EventArrays.paths`` holds the trace names, ``lines`` the CSV lines.

    Raises:
        SteadError: the archive is unusable (see :func:`iter_stead`).
    """
    spec = spec or WindowSpec()
    classes = tuple(classes)
    index = {c: i for i, c in enumerate(classes)}
    errors: list[RowError] = []
    source = Path(csv_path).name

    def make_error(line: int, path: str, message: str) -> SteadRowError:
        return SteadRowError(line, path, message, source)

    def windows():
        for row, st in iter_stead(hdf5_path, csv_path, categories=categories,
                                  magnitude_types=magnitude_types, max_events=max_events,
                                  errors=errors, spec=spec, noise_trigger_s=noise_trigger_s,
                                  default_category=default_category):
            label = CATEGORY_LABELS.get(row.category)
            if label is None or label not in index:
                what = f"category {row.category!r}" if label is None else f"label {label!r}"
                errors.append(make_error(row.line, row.trace_name,
                                         f"{what} is not one of the classes ({', '.join(classes)})"))
                continue
            try:
                window = preprocess_stream(st, row.trigger_time, spec, sensitivity=None)
            except PreprocessError as exc:
                errors.append(make_error(row.line, row.trace_name, str(exc)))
                continue
            yield row.line, row.trace_name, index[label], row.magnitude, window

    arrays = windows_to_arrays(windows(), spec, classes, errors, make_error)
    errors.sort(key=lambda e: e.line)
    return arrays, errors
