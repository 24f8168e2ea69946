"""The station's raw-data archive: MiniSEED day-files in an SDS tree, plus event snippets.

Layout (the one ObsPy's :class:`obspy.clients.filesystem.sds.Client` reads)::

    {root}/{year}/{net}/{sta}/{cha}.D/{net}.{sta}.{loc}.{cha}.D.{year}.{doy:03d}
    {root}/events/{YYYY}/{msg_id}.mseed     an event's waveform window (raw counts)
    {root}/events/{YYYY}/{msg_id}.json      the event message, for later labeling

Samples are raw digitizer counts stored as int32, STEIM2-compressed (INT32 when a record
cannot be STEIM2-encoded: differences beyond 30 bits). To spare an SD card, :meth:`SdsArchive.write`
buffers in memory and appends to the day-files only once a channel holds ``flush_s``
(60 s) of data, or on :meth:`SdsArchive.flush` / :meth:`SdsArchive.close`. Each flush appends
whole 512-byte records to the end of a file (MiniSEED files are concatenations of records),
split at UTC day boundaries; gaps simply start a new record.

:meth:`SdsArchive.prune` deletes day-files older than ``retention_days`` and then the oldest
day-files while the filesystem is fuller than ``max_disk_fraction``. Files of the current
day and the event snippets are never pruned.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from obspy import Stream, Trace, UTCDateTime

__all__ = ["SdsArchive", "DiskUsage", "sds_path", "to_counts"]

log = logging.getLogger(__name__)

#: MiniSEED record length (bytes) of the archive
RECORD_LENGTH = 512
#: a snippet id becomes a file name: no path separators, no leading dot
_MSG_ID = re.compile(r"^[A-Za-z0-9_:+-][A-Za-z0-9._:+-]{0,199}$")
_DAYFILE = re.compile(r"^(?P<net>[^.]*)\.(?P<sta>[^.]*)\.(?P<loc>[^.]*)\.(?P<cha>[^.]*)\.D\."
                      r"(?P<year>\d{4})\.(?P<doy>\d{3})$")
_DAY_S = 86400


class DiskUsage(NamedTuple):
    """Like :func:`shutil.disk_usage`: bytes total, used and free."""

    total: int
    used: int
    free: int


def sds_path(root: str | Path, net: str, sta: str, loc: str, cha: str, t: UTCDateTime) -> Path:
    """The SDS day-file that holds a sample at time ``t``."""
    year, doy = t.year, t.julday
    return (Path(root) / f"{year}" / net / sta / f"{cha}.D"
            / f"{net}.{sta}.{loc}.{cha}.D.{year}.{doy:03d}")


def to_counts(data: np.ndarray) -> np.ndarray:
    """``data`` as int32 counts; raises ValueError for non-integral or out-of-range values."""
    a = np.asarray(data)
    if np.ma.isMaskedArray(data) and np.ma.count_masked(data):
        raise ValueError("masked (gappy) data: split the trace first (Stream.split())")
    if a.dtype.kind in "iu":
        if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise ValueError("counts beyond the int32 range")
        return np.ascontiguousarray(a, dtype=np.int32)
    if a.dtype.kind == "f":
        if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.rint(a))):
            raise ValueError("raw counts must be integers (got fractional or non-finite samples)")
        if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise ValueError("counts beyond the int32 range")
        return np.ascontiguousarray(a, dtype=np.int32)
    raise ValueError(f"cannot store {a.dtype} samples as counts")


def _encode(traces: Iterable[Trace]) -> bytes:
    """MiniSEED bytes of ``traces`` (int32 counts): STEIM2, or INT32 if STEIM2 cannot pack."""
    st = Stream([t for t in traces if t.stats.npts])
    if not st:
        return b""
    for enc in ("STEIM2", "INT32"):
        buf = io.BytesIO()
        try:
            st.write(buf, format="MSEED", encoding=enc, reclen=RECORD_LENGTH)
        except Exception as exc:  # libmseed cannot STEIM2-pack this data
            if enc == "INT32":
                raise
            log.debug("STEIM2 failed (%s), writing INT32", exc)
            continue
        return buf.getvalue()
    return b""  # pragma: no cover


def _day_start(t: UTCDateTime) -> UTCDateTime:
    return UTCDateTime(t.year, t.month, t.day)


def _split_days(tr: Trace) -> list[Trace]:
    """``tr`` cut at UTC midnights; each piece starts on a sample of ``tr``."""
    out = []
    data, t0, sr = tr.data, tr.stats.starttime, tr.stats.sampling_rate
    i = 0
    while i < len(data):
        start = t0 + i / sr
        midnight = _day_start(start) + _DAY_S
        # first sample index at or after midnight (1 ns tolerance against rounding)
        k = max(i + 1, math.ceil((midnight - t0) * sr - 1e-6))
        piece = Trace(data=data[i:k], header={  # a view: the buffer is the archive's own
            "network": tr.stats.network, "station": tr.stats.station,
            "location": tr.stats.location, "channel": tr.stats.channel,
            "sampling_rate": sr, "starttime": start})
        out.append(piece)
        i = k
    return out


class _Segment:
    """Contiguous int32 chunks of one channel, kept as the list of arrays they came in (no
    copy per chunk; one concatenation at flush)."""

    __slots__ = ("start", "start_ns", "rate", "parts", "npts")

    def __init__(self, start: UTCDateTime, rate: float) -> None:
        self.start, self.start_ns, self.rate = start, start.ns, rate
        self.parts: list[np.ndarray] = []
        self.npts = 0

    def follows(self, start_ns: int, rate: float) -> bool:
        """Whether a chunk starting at ``start_ns`` continues this segment (same rate, within
        half a sample of the next sample's time)."""
        return rate == self.rate and abs(start_ns - self.start_ns - self.npts * 1e9 / rate) < 0.5e9 / rate

    def trace(self, key: tuple[str, str, str, str]) -> Trace:
        data = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        net, sta, loc, cha = key
        return Trace(data=data, header={"network": net, "station": sta, "location": loc, "channel": cha,
                                        "sampling_rate": self.rate, "starttime": self.start})


def _merge(segments: list[_Segment]) -> list[_Segment]:
    """Segments in time order, contiguous ones joined (a chunk that arrived late)."""
    out: list[_Segment] = []
    for seg in sorted(segments, key=lambda g: g.start_ns):
        if out and out[-1].follows(seg.start_ns, seg.rate):
            out[-1].parts += seg.parts
            out[-1].npts += seg.npts
        else:
            out.append(seg)
    return out


class SdsArchive:
    """Append-only SDS archive of raw counts with buffering, retention and a disk limit.

    Args:
        root: archive root folder (created on first write).
        retention_days: day-files whose day is more than this many days before today are
            pruned; 0 = no age limit.
        max_disk_fraction: prune the oldest day-files while the filesystem holding ``root``
            is fuller than this (0 < f <= 1; 1 = no limit).
        flush_s: seconds of data a channel buffers before it is appended to disk (s).
        disk_usage: ``f(path) -> (total, used, free)`` bytes; :func:`shutil.disk_usage` by
            default (injectable for tests).
    """

    def __init__(self, root: str | Path, retention_days: int = 30, max_disk_fraction: float = 0.8,
                 *, flush_s: float = 60.0,
                 disk_usage: Callable[[str | Path], Any] = shutil.disk_usage) -> None:
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0, got {retention_days}")
        if not 0.0 < max_disk_fraction <= 1.0:
            raise ValueError(f"max_disk_fraction must be within (0, 1], got {max_disk_fraction}")
        self.root = Path(root)
        self.retention_days = int(retention_days)
        self.max_disk_fraction = float(max_disk_fraction)
        self.flush_s = float(flush_s)
        self.disk_usage = disk_usage
        self._buf: dict[tuple[str, str, str, str], list[_Segment]] = defaultdict(list)
        self._buffered_s: dict[tuple[str, str, str, str], float] = defaultdict(float)
        self._lock = threading.RLock()
        self.bytes_written = 0

    # ----------------------------------------------------------------- continuous data
    def write(self, stream: Stream | Trace) -> None:
        """Buffer ``stream`` (raw counts); channels holding ``flush_s`` seconds are appended.

        Raises ValueError for samples that are not int32 counts (nothing is buffered then).
        """
        traces = [stream] if isinstance(stream, Trace) else list(stream)
        prepared = []
        for tr in traces:
            if not tr.stats.npts:
                continue
            for piece in (tr.split() if np.ma.isMaskedArray(tr.data) else [tr]):
                st = piece.stats
                prepared.append(((st.network, st.station, st.location, st.channel), piece.data,
                                 st.starttime, float(st.sampling_rate)))
        self._append(prepared)

    def append(self, seed_id: str, data: np.ndarray, starttime: UTCDateTime, sampling_rate: float) -> None:
        """Buffer one chunk of raw counts of channel ``seed_id`` (``NET.STA.LOC.CHA``) starting
        at ``starttime``, ``sampling_rate`` in Hz: :meth:`write` without building a Trace (the
        station's path: one int32 copy of the chunk, no ``Trace.copy``). ValueError as
        :meth:`write`."""
        net, sta, loc, cha = seed_id.split(".")
        self._append([((net, sta, loc, cha), data, starttime, float(sampling_rate))])

    def _append(self, chunks: list[tuple[tuple[str, str, str, str], np.ndarray, UTCDateTime, float]]) -> None:
        prepared = []
        for key, data, start, rate in chunks:  # check them all before buffering any
            counts = to_counts(data)
            if counts is data or np.shares_memory(counts, data):
                counts = counts.copy()  # the caller may reuse its buffer
            prepared.append((key, counts, start, rate))
        with self._lock:
            due = set()
            for key, counts, start, rate in prepared:
                if not counts.size:
                    continue
                segments = self._buf[key]
                start_ns = start.ns
                if not segments or not segments[-1].follows(start_ns, rate):
                    segments.append(_Segment(start, rate))
                seg = segments[-1]
                seg.parts.append(counts)
                seg.npts += counts.size
                self._buffered_s[key] += counts.size / rate
                if self._buffered_s[key] >= self.flush_s:
                    due.add(key)
            for key in due:
                self._flush_key(key)

    def flush(self) -> list[Path]:
        """Append everything buffered; returns the day-files written to."""
        with self._lock:
            written: list[Path] = []
            for key in list(self._buf):
                written += self._flush_key(key)
            return written

    def close(self) -> None:
        """Flush; the archive stays usable (a later write buffers again)."""
        self.flush()

    def __enter__(self) -> SdsArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def buffered_s(self) -> float:
        """Most seconds of data any channel holds in memory (s)."""
        with self._lock:
            return max(self._buffered_s.values(), default=0.0)

    def _flush_key(self, key: tuple[str, str, str, str]) -> list[Path]:
        segments = self._buf.pop(key, [])
        self._buffered_s.pop(key, None)
        by_file: dict[Path, list[Trace]] = defaultdict(list)
        for seg in _merge(segments):
            for piece in _split_days(seg.trace(key)):
                by_file[sds_path(self.root, *key, piece.stats.starttime)].append(piece)
        for path, pieces in sorted(by_file.items()):
            blob = _encode(pieces)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                fh.write(blob)
            self.bytes_written += len(blob)
        return sorted(by_file)

    # ----------------------------------------------------------------- pruning
    def day_files(self) -> list[tuple[UTCDateTime, Path]]:
        """(UTC day, path) of every SDS day-file under ``root``, oldest first."""
        out = []
        if not self.root.is_dir():
            return out
        for year_dir in self.root.iterdir():
            if not (year_dir.is_dir() and re.fullmatch(r"\d{4}", year_dir.name)):
                continue
            for path in year_dir.glob("*/*/*.D/*"):
                m = _DAYFILE.match(path.name)
                if not m or not path.is_file():
                    continue
                try:
                    day = UTCDateTime(year=int(m["year"]), julday=int(m["doy"]))
                except (ValueError, TypeError):
                    continue
                out.append((day, path))
        out.sort(key=lambda x: (x[0], str(x[1])))
        return out

    def prune(self, now: UTCDateTime | None = None) -> list[Path]:
        """Delete day-files by age, then the oldest while the disk is fuller than
        ``max_disk_fraction``; returns the removed paths. Today's files are kept."""
        now = UTCDateTime() if now is None else now
        today = _day_start(now)
        removed: list[Path] = []
        with self._lock:
            files = self.day_files()
            if self.retention_days > 0:
                cutoff = today - self.retention_days * _DAY_S
                keep = []
                for day, path in files:
                    if day < cutoff:
                        removed += self._remove(path)
                    else:
                        keep.append((day, path))
                files = keep
            if self.max_disk_fraction < 1.0 and self.root.exists():
                old = [p for day, p in files if day < today]
                while old and self._fraction() > self.max_disk_fraction:
                    removed += self._remove(old.pop(0))
                if self._fraction() > self.max_disk_fraction:
                    log.warning("archive %s: disk still %.0f%% full after pruning every old day-file",
                                self.root, 100 * self._fraction())
        return removed

    def make_room(self, min_free_bytes: int = 64 * 1024 * 1024, now: UTCDateTime | None = None) -> list[Path]:
        """The disk is full (a write failed with ENOSPC): delete the oldest day-files (never
        today's) until at least ``min_free_bytes`` are free on the archive's filesystem --
        the archive gives way before alerts do. Returns the removed paths."""
        today = _day_start(UTCDateTime() if now is None else now)
        removed: list[Path] = []
        with self._lock:
            old = [p for day, p in self.day_files() if day < today]
            while old and self._free() < min_free_bytes:
                removed += self._remove(old.pop(0))
        if removed:
            log.warning("archive %s: disk full: removed %d old day-file(s) to make room",
                        self.root, len(removed))
        return removed

    def _free(self) -> int:
        root = self.root if self.root.exists() else self.root.parent
        return int(self.disk_usage(root)[2])

    def _fraction(self) -> float:
        usage = self.disk_usage(self.root)
        total, used = usage[0], usage[1]
        return used / total if total else 0.0

    def _remove(self, path: Path) -> list[Path]:
        try:
            path.unlink()
        except FileNotFoundError:
            return []
        # drop the folders the file leaves empty, up to the root
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        log.info("archive: pruned %s", path)
        return [path]

    # ----------------------------------------------------------------- event snippets
    def write_snippet(self, msg_id: str, stream: Stream, meta: dict[str, Any]) -> Path:
        """Store an event's waveform window (raw counts) and its message; returns the
        ``.mseed`` path (``{root}/events/{YYYY}/{msg_id}.mseed``, the year of the first
        sample). Both files are written atomically (temporary file + rename)."""
        if not _MSG_ID.match(msg_id):
            raise ValueError(f"message id {msg_id!r} cannot be a file name")
        traces = []
        for tr in stream:
            for piece in (tr.split() if np.ma.isMaskedArray(tr.data) else [tr]):
                c = piece.copy()
                c.data = to_counts(piece.data)
                traces.append(c)
        if traces:
            year = min(t.stats.starttime for t in traces).year
        else:
            year = UTCDateTime().year
        folder = self.root / "events" / f"{year:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        mseed = folder / f"{msg_id}.mseed"
        _atomic_write(mseed, _encode(traces))
        text = json.dumps(meta, indent=2, sort_keys=False, default=str, ensure_ascii=False)
        _atomic_write(folder / f"{msg_id}.json", (text + "\n").encode("utf-8"))
        return mseed


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
