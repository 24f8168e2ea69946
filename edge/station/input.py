"""Where the daemon's samples come from: the digitizer's serial link, the virtual digitizer
(on a pseudo-terminal, read through the same serial path), or a replay of waveform files.

Every source yields :class:`Chunk` s -- one channel's consecutive samples with their start
time -- in time order across channels, and :class:`LinkNote` s for what happened to the link.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from obspy import Stream, UTCDateTime

__all__ = ["Chunk", "LinkNote", "serial_chunks", "replay_chunks", "stream_chunks", "LinkCounters"]

log = logging.getLogger(__name__)


@dataclass
class Chunk:
    """Samples of one channel: ``data`` int32 counts starting at ``starttime`` (UTC)."""

    seed_id: str
    data: np.ndarray
    starttime: UTCDateTime
    sampling_rate: float
    #: wall-clock time (time.time()) the bytes arrived; the latency clock starts here
    received: float = 0.0

    @property
    def endtime(self) -> UTCDateTime:
        """Time just after the last sample."""
        return self.starttime + self.data.size / self.sampling_rate


@dataclass
class LinkNote:
    """Something that happened to the link: ``kind`` "connected", "disconnected",
    "open_failed", "gap", "restart" or "end" (a replay is over)."""

    kind: str
    message: str = ""


Item = Chunk | LinkNote


@dataclass
class LinkCounters:
    """Link statistics the daemon reports in its health message."""

    frames: int = 0
    crc_errors: int = 0
    gaps: int = 0
    restarts: int = 0
    disconnects: int = 0


def serial_chunks(port: str, baudrate: int, network: str, station: str, location: str,
                  channels: Sequence[str], stop: threading.Event,
                  counters: LinkCounters | None = None) -> Iterator[Item]:
    """Read the digitizer on ``port`` (reconnecting forever) and yield its samples per
    channel. ``channels`` names the digitizer's channels in its order (Z, N, E)."""
    from firmware_bridge.decoder import FrameDecoder
    from firmware_bridge.protocol import SampleBlock, StreamConfig
    from firmware_bridge.serial_reader import LinkEvent, SerialReader, SerialSettings

    cfg = StreamConfig(network=network, station=station, location=location, channels=tuple(channels))
    decoder = FrameDecoder(cfg)
    # "idle" events while the digitizer is silent keep the daemon's loop (and watchdog) turning
    reader = SerialReader(SerialSettings(port=port, baudrate=baudrate, idle_event_s=0.5), decoder)
    counters = counters if counters is not None else LinkCounters()
    ids = [f"{network}.{station}.{location}.{c}" for c in channels]
    watcher = threading.Thread(target=lambda: (stop.wait(), reader.stop()), daemon=True)
    watcher.start()
    for item in reader.items():
        now = time.time()
        if isinstance(item, LinkEvent):
            if item.kind == "disconnected":
                counters.disconnects += 1
            yield LinkNote(item.kind, item.message)
            continue
        counters.crc_errors = int(decoder.stats.crc_errors)
        if not isinstance(item, SampleBlock):
            continue  # status and log frames
        counters.frames += 1
        if item.segment_reason == "gap":
            counters.gaps += 1
            yield LinkNote("gap", f"{item.gap_samples} samples lost")
        elif item.segment_reason == "restart":
            counters.restarts += 1
            yield LinkNote("restart", "digitizer restarted")
        t0 = UTCDateTime(ns=int(item.t0_ns))
        fs = item.sampling_rate
        for i in range(min(item.nch, len(ids))):
            yield Chunk(ids[i], item.data[i], t0, fs, now)
        if stop.is_set():
            return


def stream_chunks(st: Stream, chunk_s: float = 1.0) -> Iterator[Chunk]:
    """Cut a Stream into per-channel chunks of ``chunk_s`` seconds, interleaved in time
    (all channels' chunk k, then chunk k + 1): what a digitizer would deliver."""
    st = st.copy()
    st.merge(method=-1)
    st.sort(keys=["starttime", "channel"])
    pieces: list[tuple[float, int, Chunk]] = []
    for k, tr in enumerate(st):
        data = np.asarray(tr.data)
        if np.ma.isMaskedArray(tr.data):
            for sub in tr.split():
                pieces.extend(_cut(sub, chunk_s, k))
            continue
        tr.data = data
        pieces.extend(_cut(tr, chunk_s, k))
    pieces.sort(key=lambda p: (p[0], p[1]))
    for _, _, c in pieces:
        yield c


def _cut(tr, chunk_s: float, order: int) -> list[tuple[float, int, Chunk]]:
    fs = float(tr.stats.sampling_rate)
    n = max(1, int(round(chunk_s * fs)))
    data = np.asarray(tr.data)
    if data.dtype.kind == "f":
        data = np.round(data)
    data = data.astype(np.int32, copy=False)
    out = []
    t0 = tr.stats.starttime
    for s in range(0, data.size, n):
        start = t0 + s / fs
        out.append((start.timestamp, order, Chunk(tr.id, data[s:s + n], start, fs)))
    return out


def replay_chunks(paths: Sequence[str], speed: float, stop: threading.Event, chunk_s: float = 1.0,
                  stream: Stream | None = None) -> Iterator[Item]:
    """Replay waveform files (any ObsPy format; raw counts) as chunks. ``speed`` 1 = real
    time, 2 = twice as fast, 0 = as fast as the daemon can take them."""
    if stream is None:
        from obspy import read

        stream = Stream()
        for p in paths:
            try:
                stream += read(str(p))
            except Exception as exc:  # noqa: BLE001 -- name the file, not obspy's internals
                raise ValueError(f"replay: cannot read {p}: {exc}") from None
    if not len(stream):
        raise ValueError("replay: no waveform data")
    t_first = min(tr.stats.starttime for tr in stream)
    wall0 = time.monotonic()
    for c in stream_chunks(stream, chunk_s):
        if stop.is_set():
            return
        if speed and speed > 0:
            due = wall0 + float(c.endtime - t_first) / speed
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
        c.received = time.time()
        yield c
    yield LinkNote("end", "replay finished")
