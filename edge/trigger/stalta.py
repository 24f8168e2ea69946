"""Band-pass + STA/LTA characteristic function of one continuous channel, chunk by chunk
(:class:`StaLtaStream`), equal to ObsPy's ``recursive_sta_lta`` / ``classic_sta_lta`` of the
band-passed whole trace (how: :mod:`edge.trigger.stream`)."""
from __future__ import annotations

import numpy as np

from edge.trigger.bandpass import sosfilt_inplace, sosfilt_kernel
from edge.trigger.clib import clibsignal, head_stalta_t
from edge.trigger.settings import METHODS

__all__ = ["StaLtaStream"]

_TINY = np.finfo(np.float64).tiny


class StaLtaStream:
    """Band-pass + STA/LTA of one continuous channel, chunk by chunk.

    ``process(chunk)`` returns the characteristic function of the chunk's samples, equal to
    ObsPy's ``recursive_sta_lta`` / ``classic_sta_lta`` of the band-passed whole trace
    (see the module docstring). ``reset()`` starts a new segment (after a gap).

    Args:
        method: ``"recstalta"`` or ``"classicstalta"``.
        nsta, nlta: STA and LTA windows (samples), 1 <= nsta < nlta.
        sos: band-pass sections (:func:`bandpass_sos`), or None for no filter.
    """

    __slots__ = ("method", "nsta", "nlta", "sos", "zi", "zs", "zl", "sos_sta", "sos_lta",
                 "n", "hist", "_head", "_stalta", "_m", "_buf", "_x", "_x0", "_r0", "_r1")

    def __init__(self, method: str, nsta: int, nlta: int, sos: np.ndarray | None) -> None:
        if method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
        if not 1 <= nsta < nlta:
            raise ValueError(f"need 1 <= nsta < nlta samples, got nsta={nsta}, nlta={nlta}")
        self.method = method
        self.nsta, self.nlta = int(nsta), int(nlta)
        self.sos = None if sos is None else np.ascontiguousarray(sos, dtype=np.float64)
        csta, clta = 1.0 / nsta, 1.0 / nlta
        # sta = csta*x**2 + (1-csta)*sta as one section: b = (csta, 0, 0), a = (1, -(1-csta), 0)
        self.sos_sta = np.array([[csta, 0.0, 0.0, 1.0, -(1 - csta), 0.0]])
        self.sos_lta = np.array([[clta, 0.0, 0.0, 1.0, -(1 - clta), 0.0]])
        self.zi = np.zeros((1, 0 if sos is None else len(self.sos), 2))
        self.zs = np.zeros((1, 1, 2))
        self.zl = np.zeros((1, 1, 2))
        self._stalta = None
        if method == "classicstalta":
            self._head = np.zeros(1, dtype=head_stalta_t)
            self._head["nsta"] = nsta
            self._head["nlta"] = nlta
            self._stalta = clibsignal.stalta
        self.n = 0
        self.hist = np.zeros(0)
        self._m = -1

    @property
    def first_valid(self) -> int:
        """Index of the first sample whose value is not forced to 0 (ObsPy's convention)."""
        return self.nlta if self.method == "recstalta" else self.nlta - 1

    def reset(self) -> None:
        """Start a new segment: filter and averages from zero, as on a new Trace."""
        self.zi[...] = 0.0
        self.zs[...] = 0.0
        self.zl[...] = 0.0
        self.n = 0
        self.hist = np.zeros(0)

    def filter(self, data: np.ndarray) -> np.ndarray:
        """Band-pass one chunk (state carried), without the STA/LTA: a float64 copy.
        (For inspection; :meth:`process` filters itself; do not mix the two.)"""
        x = np.array(data, dtype=np.float64, ndmin=2)
        if self.sos is not None:
            sosfilt_inplace(self.sos, x, self.zi)
        return x[0]

    def process(self, data: np.ndarray) -> np.ndarray:
        """Characteristic function of the next chunk of raw samples (a new float64 array
        of len(data))."""
        return self._next(data).copy()

    def _next(self, data: np.ndarray) -> np.ndarray:
        """As :meth:`process`, but the result lives in a buffer reused by the next call."""
        m = data.shape[0]
        if m != self._m:  # buffers for this chunk length (a station's chunks rarely vary)
            self._m = m
            self._buf = np.empty((2, m))
            self._x = np.empty((1, m))
            self._x0 = self._x[0]
            self._r0, self._r1 = self._buf[0:1], self._buf[1:2]
        x = self._x
        self._x0[...] = data
        if self.sos is not None:
            sosfilt_kernel(self.sos, x, self.zi)
        i0 = self.n
        self.n = i0 + m
        if self._stalta is not None:
            return self._classic(self._x0)
        buf = self._buf
        np.multiply(x, x, out=buf)  # both rows: x**2
        if i0 == 0:
            buf[:, 0] = 0.0  # ObsPy's C loop starts at sample 1
        lta_state = self.zl[0, 0, 0]  # (1 - clta) * the last lta
        sosfilt_kernel(self.sos_sta, self._r0, self.zs)
        sosfilt_kernel(self.sos_lta, self._r1, self.zl)
        cft = buf[0]
        if lta_state > 1e-250 and m < 100 * self.nlta:
            # lta > 0 throughout: it cannot decay to 0 within the chunk
            np.divide(cft, buf[1], out=cft)
        else:  # start of a segment or all-zero data: 0/0 gives 0 (ObsPy: nan)
            buf[1] += _TINY  # no effect on any lta > 1e-290
            np.divide(cft, buf[1], out=cft)
        if i0 < self.nlta:
            cft[: self.nlta - i0] = 0.0
        return cft

    def _classic(self, y: np.ndarray) -> np.ndarray:
        """Classic STA/LTA: ObsPy's C code on the last nlta - 1 samples + this chunk."""
        h = self.hist
        block = np.concatenate((h, y)) if h.size else y.copy()
        out = np.zeros(block.size)
        if block.size >= self.nlta:
            self._head["N"] = block.size
            if self._stalta(self._head, block, out) != 0:  # pragma: no cover - size checked
                raise RuntimeError("clibsignal.stalta failed")
        keep = self.nlta - 1
        self.hist = block[-keep:].copy() if block.size > keep else block
        return out[h.size:]

