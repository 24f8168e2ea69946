"""One channel of the streaming trigger: segment bookkeeping (warm-up, gaps), its
:class:`~edge.trigger.stalta.StaLtaStream` and the per-channel on/off state machine
(ObsPy's ``trigger_onset`` plus ``hold_s``; rules: :mod:`edge.trigger.stream`)."""
from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np

from edge.trigger.bandpass import bandpass_sos
from edge.trigger.settings import TriggerConfig
from edge.trigger.stalta import StaLtaStream

__all__ = ["ChannelTrigger", "Channel", "ON", "OFF"]


class ChannelTrigger:
    """One channel-level trigger (on .. off)."""

    __slots__ = ("seed_id", "on_ns", "peak", "spent")

    def __init__(self, seed_id: str, on_ns: int, peak: float) -> None:
        self.seed_id = seed_id
        self.on_ns = on_ns
        self.peak = peak
        self.spent = False


ON, OFF = 0, 1  # ranks: at equal times an on sorts before an off (they overlap)


class Channel:
    """One channel in one trigger band: segment bookkeeping, the cft stream and the on/off
    state machine. ``band`` is ``(low, high)`` Hz (None: the configuration's single band),
    ``sta_s`` its STA window (s; None: ``cfg.sta_s``), ``key`` is ``(seed_id, band index)``.

    Sample ``i`` of the current segment is at ``seg_ns + round(i * dt_ns)``."""

    __slots__ = ("seed_id", "band", "index", "key", "weight", "fs", "dt_ns", "half_ns", "cft", "nwarm", "nhold",
                 "max_len", "on_thr", "off_thr", "seg_ns", "next_ns", "on", "on_idx",
                 "last_above", "need_rise", "rise_from", "rise_level", "trig", "pending", "seq")

    def __init__(self, seed_id: str, cfg: TriggerConfig, fs: float, start_ns: int,
                 seq: itertools.count, band: tuple[float, float] | None = None,
                 index: int = 0, sta_s: float | None = None) -> None:
        if not (fs > 0 and math.isfinite(fs)):
            raise ValueError(f"{seed_id}: sampling_rate must be > 0, got {fs!r}")
        sta_s = cfg.sta_s if sta_s is None else float(sta_s)
        nsta, nlta = int(sta_s * fs), int(cfg.lta_s * fs)  # as Trace.trigger
        if nsta < 1 or nlta <= nsta:
            raise ValueError(f"{seed_id}: sta_s = {sta_s:g} s and lta_s = {cfg.lta_s:g} s "
                             f"give nsta = {nsta}, nlta = {nlta} samples at {fs:g} Hz; need "
                             "1 <= nsta < nlta")
        self.seed_id = seed_id
        self.band = cfg.bands_hz()[0] if band is None else (float(band[0]), float(band[1]))
        self.index = index
        self.key = (seed_id, index)
        self.weight = cfg.weight(seed_id)
        self.fs = fs
        self.dt_ns = 1e9 / fs
        self.half_ns = 0.5e9 / fs
        self.cft = StaLtaStream(cfg.method, nsta, nlta,
                                bandpass_sos(self.band[0], self.band[1], fs, cfg.corners))
        warm = nlta if cfg.warmup_s is None else int(round(cfg.warmup_s * fs))
        self.nwarm = max(warm, self.cft.first_valid)
        self.nhold = int(round(cfg.hold_s * fs))
        self.max_len = int(cfg.max_duration_s * fs + 0.5)  # as coincidence_trigger
        self.on_thr, self.off_thr = float(cfg.on), float(cfg.off)
        self.pending: deque = deque()
        self.seq = seq
        self.reset(start_ns)

    # --------------------------------------------------------------- segments
    def reset(self, start_ns: int) -> None:
        self.cft.reset()
        self.seg_ns = start_ns
        self.next_ns = start_ns
        self.on = False
        self.on_idx = self.last_above = -1
        # the edge of a segment counts as a trigger in progress: the first trigger needs the
        # ratio below `off` (at or after the warm-up) and then up through `on`
        self.need_rise = True
        self.rise_from = self.nwarm
        self.rise_level = self.off_thr
        self.trig: ChannelTrigger | None = None

    def t_ns(self, idx: int) -> int:
        """Time of sample ``idx`` of the segment (ns)."""
        return self.seg_ns + int(idx * self.dt_ns + 0.5)

    def known_ns(self) -> int:
        """All this channel's transitions before this time (ns) are in ``pending``."""
        n = self.cft.n
        return self.t_ns(n - 1 if self.on else n) if n else self.seg_ns

    def end(self, reason: str) -> int:
        """The data breaks off (gap, end of data): an on trigger goes off at the last
        sample. Returns the number of transitions added."""
        if self.on and self.cft.n:
            self._off(self.cft.n - 1, reason)
            return 1
        return 0

    # --------------------------------------------------------------- samples
    def process(self, data: np.ndarray) -> int:
        """Take the next chunk of the segment; returns the number of transitions added."""
        stream = self.cft
        cft = stream._next(data)
        n = stream.n
        i0 = n - cft.shape[0]
        self.next_ns = self.seg_ns + int(n * self.dt_ns + 0.5)
        if not self.on and not self.need_rise and i0 >= self.nwarm:
            hit = cft >= self.on_thr  # the usual case: quiet, nothing to do
            if not hit[hit.argmax()]:
                return 0
        before = len(self.pending)
        self._detect(cft, i0)
        return len(self.pending) - before

    def _detect(self, cft: np.ndarray, i0: int) -> None:
        m = cft.shape[0]
        e = i0 + m - 1  # last sample index
        on_thr, off_thr = self.on_thr, self.off_thr
        pos = 0
        while pos < m:
            if not self.on:
                start = pos
                if self.need_rise:  # wait for a sample below rise_level (from rise_from on)
                    if start < self.rise_from - i0:
                        start = self.rise_from - i0
                    if start >= m:
                        return
                    below = cft[start:] < self.rise_level
                    r = int(below.argmax())
                    if not below[r]:
                        return
                    self.need_rise = False
                    start += r + 1
                if start < self.nwarm - i0:
                    start = self.nwarm - i0
                if start >= m:
                    return
                hit = (cft[start:] if start else cft) >= on_thr
                k = int(hit.argmax())
                if not hit[k]:
                    return
                j = start + k
                self._on(i0 + j, float(cft[j]))
                pos = j + 1
                continue
            # on: find the off (last sample >= off before more than nhold samples below)
            seg = cft[pos:] if pos else cft
            nh = self.nhold
            last = self.last_above
            off_idx = -1
            above = np.flatnonzero(seg >= off_thr)
            if above.size:
                above += i0 + pos
                if int(above[0]) - last - 1 > nh:
                    off_idx = last + nh
                else:
                    if above.size > 1:
                        g = np.flatnonzero(np.diff(above) > nh + 1)
                        if g.size:
                            off_idx = int(above[g[0]]) + nh
                    if off_idx < 0:
                        last = int(above[-1])
            if off_idx < 0 and e - last > nh:
                off_idx = last + nh
            reason = "off"
            cut = self.on_idx + self.max_len
            if (off_idx < 0 or off_idx > cut) and e >= cut:
                off_idx, reason = cut, "max_duration"
            if off_idx < 0:  # still on at the end of the chunk
                self.last_above = last
                if seg.size:
                    pk = float(seg.max())
                    if pk > self.trig.peak:
                        self.trig.peak = pk
                return
            hi = off_idx - i0 + 1
            if hi > pos:
                pk = float(cft[pos:hi].max())
                if pk > self.trig.peak:
                    self.trig.peak = pk
            self._off(off_idx, reason)
            if reason == "max_duration":  # as trigger_onset: a new rise through `on` after the cut
                self.need_rise = True
                self.rise_from = off_idx
                self.rise_level = on_thr
                pos = max(off_idx - i0, 0)
            else:
                pos = hi

    def _on(self, idx: int, value: float) -> None:
        t = self.t_ns(idx)
        self.on, self.on_idx, self.last_above = True, idx, idx
        self.trig = ChannelTrigger(self.seed_id, t, value)
        self.pending.append((t, ON, next(self.seq), self, self.trig, "on"))

    def _off(self, idx: int, reason: str) -> None:
        self.on = False
        self.pending.append((self.t_ns(idx), OFF, next(self.seq), self, self.trig, reason))
        self.trig = None

