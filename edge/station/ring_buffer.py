"""Per-channel ring buffers of raw counts: the last ``capacity_s`` seconds of each channel, from
which the daemon cuts event windows as ObsPy ``Stream`` s.

Each channel keeps one contiguous run of samples: a gap (or a restart, or a time jump) starts
the buffer again at the new time, so a cut window never bridges a gap with invented samples
(:func:`edge.signal.preprocess.preprocess_stream` treats the missing part as a gap).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from obspy import Stream, Trace, UTCDateTime

__all__ = ["ChannelBuffer", "RingBuffers"]


class ChannelBuffer:
    """The newest ``capacity`` samples of one channel (int32 counts) and the time of the
    newest one. ``tolerance`` (fraction of a sample) decides what still counts as contiguous."""

    def __init__(self, sampling_rate: float, capacity_s: float, tolerance: float = 0.5) -> None:
        self.sampling_rate = float(sampling_rate)
        self.capacity = int(round(capacity_s * self.sampling_rate))
        self._buf = np.zeros(self.capacity, dtype=np.int32)
        self._n = 0              # samples held (<= capacity)
        self._w = 0              # write position
        self._end: UTCDateTime | None = None   # time of the sample after the newest one
        self.tolerance = tolerance
        self.resets = 0

    @property
    def starttime(self) -> UTCDateTime | None:
        """Time of the oldest sample held."""
        return None if self._end is None else self._end - self._n / self.sampling_rate

    @property
    def endtime(self) -> UTCDateTime | None:
        """Time just after the newest sample (the time the next sample should have)."""
        return self._end

    def __len__(self) -> int:
        return self._n

    def append(self, data: np.ndarray, starttime: UTCDateTime) -> bool:
        """Append ``data`` (counts) starting at ``starttime``; returns True when it did not
        continue the buffer (a gap, an overlap or the first data) and the buffer restarted."""
        data = np.asarray(data, dtype=np.int32)
        restarted = False
        if self._end is None or abs(float(starttime - self._end)) * self.sampling_rate > self.tolerance:
            if self._end is not None:
                self.resets += 1
            self._n = 0
            self._w = 0
            restarted = True
        n = data.size
        if n >= self.capacity:
            self._buf[:] = data[-self.capacity:]
            self._w = 0
            self._n = self.capacity
        else:
            first = min(n, self.capacity - self._w)
            self._buf[self._w:self._w + first] = data[:first]
            if n > first:
                self._buf[: n - first] = data[first:]
            self._w = (self._w + n) % self.capacity
            self._n = min(self.capacity, self._n + n)
        self._end = UTCDateTime(starttime) + n / self.sampling_rate
        return restarted

    def cut(self, t0: UTCDateTime, t1: UTCDateTime) -> tuple[np.ndarray, UTCDateTime] | None:
        """Samples from the first at or after ``t0`` up to ``t1`` and the time of the first;
        None when nothing of ``[t0, t1]`` is held."""
        if self._end is None or self._n == 0:
            return None
        fs = self.sampling_rate
        start = self.starttime
        i0 = max(0, int(np.ceil(round((t0 - start) * fs, 6))))
        i1 = min(self._n, int(np.floor(round((t1 - start) * fs, 6))) + 1)
        if i1 <= i0:
            return None
        oldest = (self._w - self._n) % self.capacity
        idx = (oldest + np.arange(i0, i1)) % self.capacity
        return self._buf[idx].copy(), start + i0 / fs


@dataclass
class _Chan:
    network: str
    station: str
    location: str
    channel: str
    buffer: ChannelBuffer


class RingBuffers:
    """One :class:`ChannelBuffer` per SEED id."""

    def __init__(self, capacity_s: float = 300.0) -> None:
        self.capacity_s = float(capacity_s)
        self._chans: dict[str, _Chan] = {}

    def append(self, seed_id: str, data: np.ndarray, starttime: UTCDateTime, sampling_rate: float) -> bool:
        """Append a chunk of one channel; True when its buffer restarted (gap or first data)."""
        ch = self._chans.get(seed_id)
        if ch is None or ch.buffer.sampling_rate != float(sampling_rate):
            net, sta, loc, cha = seed_id.split(".")
            ch = _Chan(net, sta, loc, cha, ChannelBuffer(sampling_rate, self.capacity_s))
            self._chans[seed_id] = ch
        return ch.buffer.append(data, starttime)

    def endtime(self) -> UTCDateTime | None:
        """The time up to which *every* channel has data (the slowest channel's end)."""
        ends = [c.buffer.endtime for c in self._chans.values() if c.buffer.endtime is not None]
        return min(ends) if ends else None

    def stream(self, t0: UTCDateTime, t1: UTCDateTime) -> Stream:
        """An ObsPy ``Stream`` (int32 counts) of every channel between ``t0`` and ``t1``."""
        st = Stream()
        for ch in self._chans.values():
            got = ch.buffer.cut(t0, t1)
            if got is None:
                continue
            data, start = got
            tr = Trace(data=data)
            tr.stats.network, tr.stats.station = ch.network, ch.station
            tr.stats.location, tr.stats.channel = ch.location, ch.channel
            tr.stats.sampling_rate = ch.buffer.sampling_rate
            tr.stats.starttime = start
            st += tr
        return st
