"""The station's own pipeline run offline over continuous waveform files, at full speed.

``microseis replay`` (:mod:`edge.cli.replay`) uses this module; docs/replay.md describes it.

1. :func:`scan` reads the headers of every file (any ObsPy format; MiniSEED headers cost
   almost nothing) and checks them: each channel's pieces are sorted by start time -- the
   order of the files on the command line does not matter -- and data of one channel that
   overlap (a piece starting before the previous one ends, within half a sample) are an error
   naming both files. Gaps are fine (the trigger and the ring buffers restart there).
2. :func:`replay` feeds the data to one :class:`~edge.station.pipeline.EventPipeline` per
   station (``NET.STA``), assembled exactly as the daemon assembles it
   (:func:`edge.station.assemble.build_pipeline`), in chunks interleaved in time across
   channels and stations, as a digitizer would deliver them. A file is read when its data
   are first needed and dropped when its last channel is done: with one file per channel and
   day (SDS), about one day of each channel is in memory at a time.

No wall clock drives anything: there are no sleeps, the pipeline's ``tick`` (the stale-link
close after ``stale_s`` wall seconds) is never called, and every event still open at the end
of the data is classified by ``flush``. ``latency_ms`` in the ``end`` messages is then the
compute time from the chunk that completed the window to the message (no transport).
"""
from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from obspy import Inventory, Stream, UTCDateTime, read

from edge.model.format import BundleError
from edge.model.inference import EventClassifier
from edge.station.assemble import build_pipeline, station_compat
from edge.station.input import Chunk

__all__ = [
    "DEFAULT_CHUNK_S",
    "Piece",
    "Plan",
    "Publisher",
    "ReplayError",
    "ReplayResult",
    "StationData",
    "check_model",
    "replay",
    "scan",
]

#: Chunk length (s) fed to the pipeline: long enough that per-chunk Python costs vanish, well
#: under the trigger's 10 s ``max_lag_s`` between channels.
DEFAULT_CHUNK_S = 5.0
_NS = 1_000_000_000


class ReplayError(ValueError):
    """Unusable replay input; the message is one line naming the file."""


@dataclass(frozen=True)
class Piece:
    """One contiguous run of one channel's samples in one file (an ObsPy Trace's header).

    ``start_ns``/``end_ns``: time of the first sample and time just after the last one
    (integer ns, UTC)."""

    path: Path
    seed_id: str
    start_ns: int
    end_ns: int
    sampling_rate: float
    npts: int


@dataclass
class StationData:
    """What the files hold for one station (``NET.STA``)."""

    id: str
    channels: dict[str, list[Piece]] = field(default_factory=dict)   # seed id -> sorted pieces

    @property
    def sampling_rate(self) -> float:
        return next(iter(self.channels.values()))[0].sampling_rate

    def intervals(self) -> list[tuple[int, int]]:
        """The union of the station's data intervals (ns), sorted and disjoint."""
        out: list[tuple[int, int]] = []
        for a, b in sorted((p.start_ns, p.end_ns) for ps in self.channels.values() for p in ps):
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return out

    @property
    def hours(self) -> float:
        """Hours of record: the time covered by any of its channels."""
        return sum(b - a for a, b in self.intervals()) / _NS / 3600.0

    @property
    def samples(self) -> int:
        return sum(p.npts for ps in self.channels.values() for p in ps)


@dataclass
class Plan:
    """The checked input: stations, and the files in the order they are read."""

    stations: dict[str, StationData]
    files: list[Path]

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.stations.values())

    @property
    def data_hours(self) -> float:
        """Station-hours of record (summed over stations)."""
        return sum(s.hours for s in self.stations.values())

    def covers(self, t: float, station: str | None = None) -> bool:
        """Whether POSIX time ``t`` lies in the record of ``station`` (None: of any station)."""
        ns = round(t * _NS)
        for sid, s in self.stations.items():
            if station is not None and sid != station:
                continue
            if any(a <= ns < b for a, b in s.intervals()):
                return True
        return False


def _t(ns: int) -> str:
    return UTCDateTime(ns=ns).isoformat() + "Z"


def _read_error(path: Path, exc: BaseException) -> ReplayError:
    lines = str(exc).strip().splitlines()
    return ReplayError(f"{path}: cannot read as waveform data ({lines[0] if lines else type(exc).__name__})")


def scan(paths: Sequence[str | Path]) -> Plan:
    """Read and check the headers of ``paths``; see the module docstring.

    Raises:
        ReplayError: a missing, unreadable or empty file, a file given twice, a channel whose
            sampling rate changes between files, data of one channel that overlap, or a
            station with channels of more than one instrument.
    """
    if not paths:
        raise ReplayError("no waveform files given")
    seen: dict[Path, str] = {}
    pieces: dict[str, list[Piece]] = {}
    files: list[Path] = []
    for arg in paths:
        path = Path(arg)
        if not path.exists():
            raise ReplayError(f"{arg}: no such file")
        if path.is_dir():
            raise ReplayError(f"{arg}: is a folder (give the waveform files, e.g. {arg}/*.mseed)")
        key = path.resolve()
        if key in seen:
            raise ReplayError(f"{arg}: given twice")
        seen[key] = str(arg)
        try:
            st = read(str(path), headonly=True)
        except Exception as exc:  # noqa: BLE001 -- name the file, not ObsPy's internals
            raise _read_error(path, exc) from None
        if not len(st):
            raise ReplayError(f"{arg}: no waveform data in the file")
        files.append(path)
        for tr in st:
            s = tr.stats
            fs = float(s.sampling_rate)
            if not (np.isfinite(fs) and fs > 0) or s.npts <= 0:
                continue
            start = s.starttime.ns
            pieces.setdefault(tr.id, []).append(
                Piece(path, tr.id, start, start + round(s.npts * _NS / fs), fs, int(s.npts)))
    if not pieces:
        raise ReplayError("no samples in the files given")
    stations: dict[str, StationData] = {}
    for seed_id in sorted(pieces):
        ps = sorted(pieces[seed_id], key=lambda p: (p.start_ns, str(p.path)))
        for a, b in itertools.pairwise(ps):
            if b.sampling_rate != a.sampling_rate:
                raise ReplayError(f"{seed_id}: {a.path} is sampled at {a.sampling_rate:g} Hz but "
                                  f"{b.path} at {b.sampling_rate:g} Hz")
            half = int(_NS / a.sampling_rate / 2)
            if b.start_ns < a.end_ns - half:
                where = (f"{a.path} overlaps itself" if a.path == b.path else
                         f"{a.path} and {b.path} overlap")
                raise ReplayError(f"{where} on {seed_id}: data from {_t(b.start_ns)} but the "
                                  f"previous part ends at {_t(a.end_ns)}")
        net, sta = seed_id.split(".")[:2]
        stations.setdefault(f"{net}.{sta}", StationData(f"{net}.{sta}")).channels[seed_id] = ps
    for s in stations.values():
        kinds = sorted({".".join(i.split(".")[2:])[:-1] for i in s.channels})
        if len(kinds) > 1:
            raise ReplayError(f"station {s.id}: channels of more than one instrument "
                              f"({', '.join(sorted(s.channels))}): give the files of one")
        rates = sorted({ps[0].sampling_rate for ps in s.channels.values()})
        if len(rates) > 1:
            raise ReplayError(f"station {s.id}: channels at different sampling rates "
                              f"({', '.join(f'{r:g}' for r in rates)} Hz)")
    return Plan(stations, files)


# ------------------------------------------------------------------------------ reading

class _Files:
    """Files read on first use and dropped when no channel needs them any more."""

    def __init__(self, pieces: Iterable[Piece]) -> None:
        self.users: dict[Path, int] = {}
        for p in pieces:
            self.users[p.path] = self.users.get(p.path, 0) + 1
        self.cache: dict[Path, Stream] = {}
        self.read_s = 0.0

    def data(self, piece: Piece) -> np.ndarray:
        """The samples of ``piece`` as int32 counts (no copy when the file holds int32)."""
        st = self.cache.get(piece.path)
        if st is None:
            t0 = time.perf_counter()
            try:
                st = read(str(piece.path))
            except Exception as exc:  # noqa: BLE001
                raise _read_error(piece.path, exc) from None
            self.read_s += time.perf_counter() - t0
            self.cache[piece.path] = st
        idx = next((k for k, tr in enumerate(st) if tr.id == piece.seed_id and
                    tr.stats.starttime.ns == piece.start_ns and tr.stats.npts == piece.npts), None)
        if idx is None:
            raise ReplayError(f"{piece.path}: changed while replaying "
                              f"({piece.seed_id} at {_t(piece.start_ns)} is gone)")
        found = st.traces.pop(idx)
        self.users[piece.path] -= 1
        if self.users[piece.path] <= 0:
            del self.cache[piece.path]
        data = np.asarray(found.data)
        if data.dtype.kind == "f":
            data = np.round(data)
        return data.astype(np.int32, copy=False)


class _Cursor:
    """One channel's pieces, handed out as chunks of ``n`` samples."""

    def __init__(self, seed_id: str, pieces: list[Piece], chunk_s: float) -> None:
        self.seed_id = seed_id
        self.pieces = pieces
        self.fs = pieces[0].sampling_rate
        self.n = max(1, round(chunk_s * self.fs))
        self.k = 0                     # index of the current piece
        self.pos = 0                   # next sample in it
        self.data: np.ndarray | None = None

    def next_ns(self) -> int:
        """Start time of the next chunk (ns)."""
        p = self.pieces[self.k]
        return p.start_ns + round(self.pos * _NS / self.fs)

    def take(self, files: _Files) -> Chunk:
        p = self.pieces[self.k]
        if self.data is None:
            self.data = files.data(p)
        start = self.next_ns()
        data = self.data[self.pos:self.pos + self.n]
        self.pos += data.size
        if self.pos >= self.data.size:
            self.k, self.pos, self.data = self.k + 1, 0, None
        return Chunk(self.seed_id, data, UTCDateTime(ns=start), self.fs)

    @property
    def done(self) -> bool:
        return self.k >= len(self.pieces)


# ------------------------------------------------------------------------------ the run

class Publisher:
    """Receives the pipelines' messages: counts ``new``, hands every ``end`` to ``on_end``
    and keeps it (for the scorecard and the summary)."""

    def __init__(self, on_end: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.on_end = on_end
        self.new = 0
        self.ends: list[dict[str, Any]] = []

    def event_new(self, msg: dict[str, Any]) -> None:
        self.new += 1

    def event_end(self, msg: dict[str, Any]) -> None:
        self.ends.append(msg)
        if self.on_end is not None:
            self.on_end(msg)


@dataclass
class ReplayResult:
    """What a replay did. ``wall_s``: seconds from the first chunk to the last ``flush``
    (reading included, model loading not); ``read_s``: the part spent reading files."""

    plan: Plan
    ends: list[dict[str, Any]]
    new: int
    wall_s: float
    read_s: float
    errors: list[str]

    @property
    def data_hours(self) -> float:
        return self.plan.data_hours

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of data (station-seconds) replayed per second of wall time."""
        return self.data_hours * 3600.0 / self.wall_s if self.wall_s > 0 else None

    def by_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.ends:
            out[m["class"]] = out.get(m["class"], 0) + 1
        return dict(sorted(out.items()))

    def summary(self) -> dict[str, Any]:
        """Plain JSON values: alerts, classes, hours, speed, per station."""
        per: dict[str, dict[str, Any]] = {}
        for sid, s in self.plan.stations.items():
            per[sid] = {"hours": round(s.hours, 6), "channels": sorted(s.channels),
                        "sampling_rate": s.sampling_rate, "samples": s.samples,
                        "alerts": sum(1 for m in self.ends if m.get("station") == sid)}
        rtf = self.realtime_factor
        return {"alerts": len(self.ends), "by_class": self.by_class(), "triggers": self.new,
                "data_hours": round(self.data_hours, 6), "wall_s": round(self.wall_s, 3),
                "read_s": round(self.read_s, 3), "realtime_factor": round(rtf, 1) if rtf else None,
                "files": len(self.plan.files), "samples": self.plan.samples, "stations": per,
                "window_errors": len(self.errors)}


def check_model(plan: Plan, classifier: EventClassifier, cfg) -> None:
    """Every station's channels and rate must suit the model (as the daemon checks its own
    at start). Raises :class:`ReplayError` naming the station."""
    for sid, s in plan.stations.items():
        chans = tuple(i.split(".")[-1] for i in s.channels)
        try:
            station_compat(cfg, chans, s.sampling_rate).check(classifier.bundle.manifest)
        except BundleError as exc:
            raise ReplayError(f"station {sid}: {exc}") from None


def replay(plan: Plan, cfg, classifier: EventClassifier, publisher: Publisher, *,
           inventory: Inventory | None = None, archive=None, chunk_s: float = DEFAULT_CHUNK_S,
           progress: Callable[[float, float], None] | None = None) -> ReplayResult:
    """Run the station over ``plan`` as fast as it goes.

    Args:
        plan: from :func:`scan`.
        cfg: the station configuration (:class:`edge.station.config.StationConfig`); its
            ``[station]`` identity comes from the data instead, ``[source]``/``[mqtt]`` are
            not used.
        classifier: the loaded bundle (:func:`edge.station.assemble.load_classifier`).
        publisher: receives the messages.
        inventory: StationXML responses (ML, the model's m/s input); else ``[magnitude]
            sensitivity``.
        archive: an :class:`edge.station.archive.SdsArchive` to write data and snippets to, or
            None (nothing written).
        chunk_s: chunk length (s).
        progress: called with ``(fraction of samples done, seconds so far)`` at each further
            tenth of the data.
    """
    pipes = {sid: build_pipeline(cfg, sid, classifier, publisher, inventory, archive=archive,
                                 sampling_rate=s.sampling_rate)
             for sid, s in plan.stations.items()}
    cursors = [(_Cursor(cid, ps, chunk_s), sid) for sid, s in plan.stations.items()
               for cid, ps in s.channels.items()]
    files = _Files(p for s in plan.stations.values() for ps in s.channels.values() for p in ps)
    heap = [(c.next_ns(), i) for i, (c, _) in enumerate(cursors)]
    heapq.heapify(heap)
    total, done, next_report = max(plan.samples, 1), 0, 0.1
    t0 = time.perf_counter()
    while heap:
        _, i = heapq.heappop(heap)
        cur, sid = cursors[i]
        chunk = cur.take(files)
        pipes[sid].process(chunk)
        done += chunk.data.size
        if not cur.done:
            heapq.heappush(heap, (cur.next_ns(), i))
        if progress is not None and done >= next_report * total:
            progress(done / total, time.perf_counter() - t0)
            next_report = (int(done * 10 / total) + 1) / 10.0
    for p in pipes.values():
        p.flush()
    wall = time.perf_counter() - t0
    errors = [e for p in pipes.values() for e in p.errors]
    return ReplayResult(plan, publisher.ends, publisher.new, wall, files.read_s, errors)
