"""Reader for the labeled dataset folder (``docs/spec/dataset.md``): obspy + csv only.

A folder holds ``labels.csv``, waveform files any ``obspy.read`` opens, and optionally
``stations.xml``. Every problem with a row becomes a :class:`RowError` naming the 1-based
line of ``labels.csv`` (the header is line 1) and the file; a bad row never stops the run
and never becomes a sample. Problems with the folder itself (no ``labels.csv``, no ``path``
column, an unreadable ``stations.xml``) raise :class:`DatasetError`.

Row errors and their exact messages (``RowError.message``):

* ``row has N fields, header has M`` (extra fields that are empty are ignored)
* ``empty path``
* ``bad magnitude 'TEXT': not a number`` (also for NaN/inf)
* ``bad trigger_time 'TEXT': not an ISO 8601 time`` (``2009-08-24T00:20:07.5``, with
  optional ``Z`` or offset; a space instead of ``T`` is accepted; no zone means UTC)
* ``bad station 'TEXT': expected NET.STA``
* ``file not found`` / ``not a file``
* ``empty file (0 bytes)`` / ``empty file: no traces`` / ``empty file: traces hold no
  samples``
* ``unreadable: ExceptionType: obspy's message``
* ``station NET.STA not in file (has A.B, C.D)``
* ``several stations in file (A.B, C.D); fill the station column``
* ``no Z component (channels: ...)``
* and, when loading, any :class:`~edge.signal.preprocess.PreprocessError`, trigger-pick or
  instrument-response message.

Several problems of one row's *text* are joined with ``"; "``; the file is only checked
when the text is fine.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import obspy
from obspy import Inventory, Stream, UTCDateTime

from edge.signal.preprocess import PreprocessError, Window, WindowSpec, component_of, preprocess_stream

__all__ = [
    "DatasetError",
    "LABELS_FILE",
    "LabeledEvent",
    "RowError",
    "STATIONS_FILE",
    "iter_windows",
    "load_event",
    "read_labels",
    "read_stations",
    "response_for",
    "sensitivity_for",
]

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
STATIONS_FILE = "stations.xml"
COLUMNS = ("path", "label", "magnitude", "trigger_time", "station")

TriggerFinder = Callable[[Stream], UTCDateTime]


class DatasetError(ValueError):
    """The dataset folder (not a single row) is unusable, or one event cannot be loaded."""


@dataclass(frozen=True)
class LabeledEvent:
    """One row of ``labels.csv``.

    Attributes:
        line: 1-based line in ``labels.csv`` where the row starts (header = 1).
        path: waveform file relative to the folder, as written.
        label: class name, ``None`` when empty or the column is absent.
        magnitude: local magnitude ML, ``None`` when unknown.
        trigger_time: onset (UTC), ``None`` when it has to be picked.
        station: ``NET.STA`` to select, ``None`` for a one-station file.
    """

    line: int
    path: str
    label: str | None = None
    magnitude: float | None = None
    trigger_time: UTCDateTime | None = None
    station: str | None = None


@dataclass(frozen=True)
class RowError:
    """A row that was skipped: line in ``labels.csv`` (header = 1), its path, and why."""

    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{LABELS_FILE} line {self.line}{where}: {self.message}"


# --------------------------------------------------------------------------- parsing


def _parse_time(text: str) -> UTCDateTime:
    t = text.strip()
    if len(t) > 10 and t[10] == " ":
        t = t[:10] + "T" + t[11:]
    return UTCDateTime(t, iso8601=True)


def _parse_row(line: int, cells: dict[str, str]) -> tuple[LabeledEvent | None, list[str]]:
    problems: list[str] = []
    path = cells.get("path", "").strip()
    if not path:
        problems.append("empty path")
    label = cells.get("label", "").strip() or None

    magnitude = None
    mag_text = cells.get("magnitude", "").strip()
    if mag_text:
        try:
            magnitude = float(mag_text)
            if not math.isfinite(magnitude):
                raise ValueError
        except ValueError:
            problems.append(f"bad magnitude {mag_text!r}: not a number")
            magnitude = None

    trigger_time = None
    t_text = cells.get("trigger_time", "").strip()
    if t_text:
        try:
            trigger_time = _parse_time(t_text)
        except Exception:
            problems.append(f"bad trigger_time {t_text!r}: not an ISO 8601 time")

    station = cells.get("station", "").strip() or None
    if station is not None:
        parts = station.split(".")
        if len(parts) != 2 or not all(parts):
            problems.append(f"bad station {station!r}: expected NET.STA")

    if problems:
        return None, problems
    return LabeledEvent(line, path, label, magnitude, trigger_time, station), []


def _stations_of(st: Stream) -> list[str]:
    return sorted({f"{tr.stats.network}.{tr.stats.station}" for tr in st})


def _select_station(st: Stream, station: str | None) -> Stream:
    """The traces of ``station`` (``NET.STA``), or all of a one-station file."""
    names = _stations_of(st)
    if station is not None:
        if station not in names:
            raise DatasetError(f"station {station} not in file (has {', '.join(names)})")
        net, sta = station.split(".")
        return st.select(network=net, station=sta)
    if len(names) > 1:
        raise DatasetError(f"several stations in file ({', '.join(names)}); fill the station column")
    return st


def _read_waveform(path: Path, headonly: bool = False) -> Stream:
    """``obspy.read`` with the dataset's error messages (raises :class:`DatasetError`)."""
    if not path.exists():
        raise DatasetError("file not found")
    if not path.is_file():
        raise DatasetError("not a file")
    if path.stat().st_size == 0:
        raise DatasetError("empty file (0 bytes)")
    try:
        st = obspy.read(str(path), headonly=headonly)
    except Exception as exc:  # obspy raises TypeError, ValueError, struct.error, ...
        raise DatasetError(f"unreadable: {type(exc).__name__}: {exc}") from None
    if len(st) == 0:
        raise DatasetError("empty file: no traces")
    return st


def _check_stream(st: Stream, station: str | None) -> Stream:
    """Station selection plus the checks a header-only read can make."""
    st = _select_station(st, station)
    if all(tr.stats.npts == 0 for tr in st):
        raise DatasetError("empty file: traces hold no samples")
    if not any(component_of(tr.stats.channel) == "Z" and tr.stats.npts > 0 for tr in st):
        raise DatasetError(f"no Z component (channels: {', '.join(sorted({tr.id for tr in st}))})")
    return st


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` of every non-blank CSV row; ``line`` is the 1-based line where the
    row starts, also when a quoted field spans several lines."""
    reader = csv.reader(lines)
    prev_line = 0
    for cells in reader:
        line, prev_line = prev_line + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield line, cells


def read_labels(
    folder: str | os.PathLike[str], *, check_files: bool = True
) -> tuple[list[LabeledEvent], list[RowError]]:
    """Parse ``folder/labels.csv``.

    Args:
        folder: the dataset folder.
        check_files: also check each row's file: exists, not empty, ``obspy.read`` opens
            it (header only), holds the row's station (or just one) and a Z component.

    Returns:
        ``(rows, errors)``: the good rows in file order, and one :class:`RowError` per bad
        row. Blank lines are skipped; columns other than those of the spec are ignored.

    Raises:
        DatasetError: no ``labels.csv``, not UTF-8, no header, or no ``path`` column.
    """
    folder = Path(folder)
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise DatasetError(f"{labels}: no {LABELS_FILE} in the dataset folder")
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{labels}: not UTF-8 ({exc})") from None

    header: list[str] | None = None
    rows: list[LabeledEvent] = []
    errors: list[RowError] = []
    for line, cells in csv_rows(text.splitlines(keepends=True)):
        if header is None:
            header = [c.strip().lower() for c in cells]
            if "path" not in header:
                raise DatasetError(f"{labels} line {line}: no 'path' column in the header {cells}")
            dupes = sorted({h for h in header if h and header.count(h) > 1})
            if dupes:
                raise DatasetError(f"{labels} line {line}: repeated columns {dupes}")
            continue
        path_text = cells[header.index("path")].strip() if len(cells) > header.index("path") else ""
        if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
            cells = cells[: len(header)]  # trailing empty fields, e.g. a comma at the line end
        if len(cells) > len(header):
            errors.append(RowError(line, path_text, f"row has {len(cells)} fields, header has {len(header)}"))
            continue
        row, problems = _parse_row(line, dict(zip(header, cells)))
        if row is None:
            errors.append(RowError(line, path_text, "; ".join(problems)))
            continue
        if check_files:
            try:
                _check_stream(_read_waveform(folder / row.path, headonly=True), row.station)
            except DatasetError as exc:
                errors.append(RowError(line, row.path, str(exc)))
                continue
        rows.append(row)
    if header is None:
        raise DatasetError(f"{labels}: empty, no header row")
    return rows, errors


# --------------------------------------------------------------------------- responses


_VELOCITY = {"M/S", "M/SEC", "M.S-1", "M*S-1"}
_DISPLACEMENT = {"M"}
_ACCELERATION = {"M/S**2", "M/S^2", "M/S/S", "M/S2", "M/SEC**2", "M/SEC^2", "M.S-2", "M*S-2"}


def sensitivity_for(inventory: Inventory, trace_id: str, time: UTCDateTime) -> float:
    """Overall instrument sensitivity of ``trace_id`` at ``time``, counts per m/s.

    Reads ``inventory.get_response(trace_id, time).instrument_sensitivity``. Input units
    ``M/S`` are used as they are. ``M`` (counts per m) and ``M/S**2`` (counts per m/s^2) are
    converted at the sensitivity's frequency ``f0``: ``S / (2 pi f0)`` and ``S * 2 pi f0``.
    That scalar conversion is exact only at ``f0``: the result is the velocity-equivalent
    gain, not a removal of the instrument response.

    Raises:
        DatasetError: no response for the channel at that time, no sensitivity, output
            units other than counts, other input units (e.g. ``V``, ``PA``), or a
            conversion without a positive frequency.
    """
    try:
        response = inventory.get_response(trace_id, time)
    except Exception:
        raise DatasetError(f"no instrument response for {trace_id} at {time} in {STATIONS_FILE}") from None
    sens = response.instrument_sensitivity
    if sens is None or sens.value is None or not sens.value > 0:
        raise DatasetError(f"{trace_id}: no overall instrument sensitivity in {STATIONS_FILE}")
    out_units = (sens.output_units or "COUNTS").strip().upper()
    if out_units not in ("COUNTS", "COUNT"):
        raise DatasetError(f"{trace_id}: sensitivity output units {out_units!r}, expected COUNTS")
    units = (sens.input_units or "").strip().upper().replace(" ", "")
    value = float(sens.value)
    if units in _VELOCITY:
        return value
    if units in _DISPLACEMENT or units in _ACCELERATION:
        f0 = float(sens.frequency or 0.0)
        if not f0 > 0:
            raise DatasetError(f"{trace_id}: cannot convert {units} sensitivity to M/S without a frequency")
        w0 = 2.0 * math.pi * f0
        return value / w0 if units in _DISPLACEMENT else value * w0
    raise DatasetError(
        f"{trace_id}: sensitivity input units {sens.input_units!r} are not ground motion "
        "(expected M/S, M or M/S**2)"
    )


def response_for(inventory: Inventory, trace_id: str, time: UTCDateTime):
    """The full ObsPy ``Response`` of ``trace_id`` at ``time`` for
    :func:`edge.signal.preprocess.preprocess_stream` (``response=``), after the checks of
    :func:`sensitivity_for` (a sensitivity to COUNTS from ground motion, M/S, M or M/S**2).

    Raises:
        DatasetError: as :func:`sensitivity_for`.
    """
    sensitivity_for(inventory, trace_id, time)
    return inventory.get_response(trace_id, time)


def read_stations(folder: str | os.PathLike[str]) -> Inventory | None:
    """``folder/stations.xml`` read with ``obspy.read_inventory``; ``None`` when absent.

    Raises:
        DatasetError: the file exists but cannot be read.
    """
    path = Path(folder) / STATIONS_FILE
    if not path.exists():
        return None
    try:
        return obspy.read_inventory(str(path))
    except Exception as exc:
        raise DatasetError(f"{path}: unreadable StationXML: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- loading


def load_event(
    folder: str | os.PathLike[str],
    row: LabeledEvent,
    spec: WindowSpec | None = None,
    trigger_finder: TriggerFinder | None = None,
    inventory: Inventory | None = None,
) -> Window:
    """Read one row's waveform and preprocess it into the model window.

    Args:
        folder: the dataset folder.
        row: a row from :func:`read_labels`.
        spec: the window contract (default :class:`WindowSpec()`).
        trigger_finder: ``f(stream) -> UTCDateTime`` used when the row has no trigger time;
            default :func:`edge.signal.picking.find_trigger` (STA/LTA on Z).
        inventory: when given, each channel's full response (:func:`response_for`) is
            removed to ground velocity (window units m/s, whatever the sensor: geophone,
            broadband, accelerometer); otherwise the data stay in counts.

    Raises:
        DatasetError: the file cannot be read or lacks what the row needs.
        PreprocessError: the data cannot make a window (its message says why).
    """
    st = _check_stream(_read_waveform(Path(folder) / row.path), row.station)
    t = row.trigger_time
    if t is None:
        if trigger_finder is None:
            # deferred: edge.signal.picking imports obspy.signal (matplotlib, ~40 MB), and the
            # station imports this module for response_for
            from edge.signal.picking import find_trigger as trigger_finder
        t = trigger_finder(st)
    spec = spec or WindowSpec()
    response = None
    if inventory is not None:
        ids = sorted({tr.id for tr in st if component_of(tr.stats.channel) in spec.components})
        response = {seed_id: response_for(inventory, seed_id, t) for seed_id in ids}
    return preprocess_stream(st, t, spec, response=response)


def iter_windows(
    folder: str | os.PathLike[str],
    spec: WindowSpec | None = None,
    *,
    errors: list[RowError] | None = None,
    trigger_finder: TriggerFinder | None = None,
    use_stations: bool = True,
) -> Iterator[tuple[LabeledEvent, Window]]:
    """Yield ``(row, window)`` for every good row of the folder, in file order.

    Every bad row (from :func:`read_labels` or failing in :func:`load_event`) is appended
    to ``errors`` when a list is given, and always logged as a warning; it never stops the
    iteration. ``stations.xml`` is used when present and ``use_stations`` is true.

    Raises:
        DatasetError: folder-level problems (see :func:`read_labels`, :func:`read_stations`).
    """
    spec = spec or WindowSpec()
    sink = errors if errors is not None else []

    def report(err: RowError) -> None:
        sink.append(err)
        log.warning("%s", err)

    rows, row_errors = read_labels(folder, check_files=False)
    inventory = read_stations(folder) if use_stations else None
    pending = sorted(row_errors, key=lambda e: e.line)
    for row in rows:
        while pending and pending[0].line < row.line:
            report(pending.pop(0))
        try:
            window = load_event(folder, row, spec, trigger_finder, inventory)
        except (DatasetError, PreprocessError) as exc:
            report(RowError(row.line, row.path, str(exc)))
            continue
        except Exception as exc:  # never let one file stop the run
            report(RowError(row.line, row.path, f"{type(exc).__name__}: {exc}"))
            continue
        yield row, window
    for err in pending:
        report(err)
