"""Where the virtual digitizer's samples come from: waveform files or synthetic noise.

A source hands out blocks of shape ``(n, nch)`` int32 in ADC counts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from firmware_bridge.protocol import ENC_INT24, ENC_RANGE

#: order in which components go onto digitizer channels (Z, N, E; 1/2 for rotated sensors)
_COMPONENT_ORDER = "ZNE12"


class NoiseSource:
    """Endless synthetic ground noise: white noise plus a 0.2 Hz microseism, in counts."""

    def __init__(self, sampling_rate: float = 250.0, nch: int = 3, rms_counts: float = 2000.0,
                 seed: int = 0, start_ns: int | None = None) -> None:
        self.sampling_rate = float(sampling_rate)
        self.nch = nch
        self.rms_counts = rms_counts
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.channel_codes: tuple[str, ...] = ("HHZ", "HHN", "HHE")[:nch] if nch <= 3 else tuple(
            f"CH{i}" for i in range(nch))
        self._rng = np.random.default_rng(seed)
        self._phase = self._rng.uniform(0, 2 * np.pi, nch)
        self._n = 0

    def read(self, n: int) -> np.ndarray | None:
        t = (self._n + np.arange(n)) / self.sampling_rate
        micro = 2.5 * self.rms_counts * np.sin(2 * np.pi * 0.2 * t[:, None] + self._phase[None, :])
        block = self._rng.normal(0.0, self.rms_counts, (n, self.nch)) + micro
        self._n += n
        return np.rint(block).astype(np.int32)


@dataclass
class ArraySource:
    """Samples held in memory (from files), played once or in a loop."""

    data: np.ndarray  # (npts, nch) int32 counts
    sampling_rate: float
    start_ns: int
    channel_codes: tuple[str, ...]
    #: counts per unit of the file's samples (1.0 when the file already held counts)
    scale: float = 1.0
    loop: bool = False
    _pos: int = 0

    @property
    def nch(self) -> int:
        return int(self.data.shape[1])

    def read(self, n: int) -> np.ndarray | None:
        """Next ``n`` samples, or None at the end (never a short, padded block)."""
        npts = self.data.shape[0]
        if self._pos + n > npts:
            if not self.loop:
                return None
            self._pos = 0
        block = self.data[self._pos:self._pos + n]
        self._pos += n
        return block


def source_from_stream(st, enc: int = ENC_INT24, loop: bool = False) -> ArraySource:
    """An :class:`ArraySource` from an ObsPy Stream: first station, components Z, N, E.

    Integer data that fit the encoding are sent as they are (they are counts already);
    anything else (floats in m/s, say) is scaled so the largest sample is half of full scale.
    """
    if len(st) == 0:
        raise ValueError("no traces in the waveform files")
    st = st.copy()
    first = st[0].stats
    station = (first.network, first.station)
    st = st.select(network=station[0], station=station[1])
    st.merge(method=1, fill_value=0)
    traces = sorted(st, key=lambda tr: (_COMPONENT_ORDER.find(tr.stats.channel[-1:]) % 10,
                                        tr.stats.channel))
    rates = {tr.stats.sampling_rate for tr in traces}
    if len(rates) != 1:
        raise ValueError(f"components of {'.'.join(station)} have different sampling rates: {sorted(rates)}")
    start = max(tr.stats.starttime for tr in traces)
    end = min(tr.stats.endtime for tr in traces)
    if end <= start:
        raise ValueError(f"components of {'.'.join(station)} do not overlap in time")
    for tr in traces:
        tr.trim(start, end, nearest_sample=True)
    npts = min(tr.stats.npts for tr in traces)
    data = np.stack([np.asarray(tr.data[:npts]) for tr in traces], axis=1)
    if not np.all(np.isfinite(data)):
        raise ValueError("waveform data contain NaN or infinite samples")
    lo, hi = ENC_RANGE[enc]
    scale = 1.0
    if np.issubdtype(data.dtype, np.integer) and data.min() >= lo and data.max() <= hi:
        counts = data.astype(np.int32)
    else:
        peak = float(np.max(np.abs(data))) or 1.0
        scale = 0.5 * hi / peak
        counts = np.rint(data.astype(np.float64) * scale).astype(np.int32)
    return ArraySource(data=counts, sampling_rate=float(rates.pop()), start_ns=start.ns,
                       channel_codes=tuple(tr.stats.channel for tr in traces), scale=scale, loop=loop)


def source_from_files(paths: list[str], enc: int = ENC_INT24, loop: bool = False) -> ArraySource:
    """Read any ObsPy-readable files and make an :class:`ArraySource`; errors name the file."""
    from obspy import Stream, read

    st = Stream()
    for path in paths:
        try:
            st += read(path)
        except Exception as exc:
            raise ValueError(f"cannot read waveform file {path}: {exc}") from None
    return source_from_stream(st, enc=enc, loop=loop)
