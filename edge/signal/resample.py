"""Streaming polyphase resampling of one channel: any digitizer rate to the model's rate.

One implementation for the whole-trace (training, ``microseis predict``/``evaluate``) and the
chunked (station) paths, so both see byte-for-byte the same samples.

**The filter** is the one of ``scipy.signal.resample_poly(x, up, down)`` with its default
window: ``up/down`` is the reduced fraction ``rate_out / rate_in`` (rates taken to 1 mHz,
factors at most :data:`MAX_RESAMPLE_FACTOR`; 50 -> 250 Hz is 5/1, 100 -> 5/2, 200 -> 5/4,
500 -> 1/2, 1000 -> 1/4), ``max_rate = max(up, down)``, ``half_len = 10 * max_rate`` and the
taps ``h = up * firwin(2 * half_len + 1, 1 / max_rate, window=("kaiser", 5.0))`` (a
Kaiser-windowed sinc low-pass at the lower of the two Nyquist frequencies, unit DC gain
before the ``up`` factor). :func:`fir_taps` computes them with numpy alone (the station does
not import scipy.signal, 80 MB and 0.6 s); the tests check them against scipy.

**The output**, counting input samples ``x[i]`` and output samples ``y[m]`` from 0 at the
first sample after construction or :meth:`StreamResampler.reset`, is::

    y[m] = sum_i h[m * down + half_len - i * up] * x[i]      (x = 0 before the first sample)

which is ``resample_poly``'s zero-phase output: the filter's delay is compensated, so **output
sample m lies at t0 + m / rate_out**, where t0 is the time of the first input sample (the first
output sample has the first input's time). ``process(x) + flush()`` over a whole trace gives
``resample_poly(x, up, down)`` sample for sample (the same ``ceil(n * up / down)`` samples,
equal to floating-point rounding; the ends are zero-padded as resample_poly does).

**Streaming**: ``y[m]`` needs the inputs up to ``i = (m * down + half_len) // up``, so a chunk
returns every output whose inputs have all arrived and keeps the last ``~2 * half_len / up``
inputs as history. An output therefore leaves :meth:`StreamResampler.process` about
:attr:`StreamResampler.delay` ``= half_len / (up * rate_in)`` seconds (the filter's group delay)
after its own time: 40 ms for 1000 -> 250 Hz and 500 -> 250 Hz, 50 ms for 200 -> 250 Hz,
100 ms for 100 -> 250 Hz, 200 ms for 50 -> 250 Hz. Its time stays ``t0 + m / rate_out``.

**Bit-identical for any chunking**: every output is computed by the same sequence of IEEE
multiplies and adds, ``acc = g[0] * x[a]``, then ``acc = acc + g[k] * x[a - k]`` for k = 1, 2,
... over the taps ``g`` of its polyphase branch: vectorised over outputs by a loop over the
taps for large chunks, or as one (outputs x taps) product and ``np.add.accumulate`` along the
taps (a running sum: the same adds in the same order) for small ones; never a dot product or
BLAS call, whose summation order could depend on how many outputs a call computes. Chunks of
1 sample, of 7, or the whole trace give the same bytes, and since only elementwise IEEE
arithmetic is involved, so do other machines given the same taps (the taps use ``sin`` and
``exp`` of the platform's libraries, as scipy's do).

**Speed** (``python bench/resample_throughput.py``): 3 channels of 1 h at 1000 Hz to 250 Hz
take 0.29 s as whole traces (about 12 000 times real time) and 1.0 s in 1 s chunks (3 700
times) on one core of the development machine.

**Gaps**: the resampler knows nothing of time. At a gap, :meth:`StreamResampler.flush` (emit
the tail as if the data ended, then start afresh) or :meth:`StreamResampler.reset` (drop the
tail) and feed the next segment; its outputs are then timed from its own first sample. NaN or
inf in the input spoil the outputs whose filter spans them (about ``2 * delay``), nothing else.

Equal rates (``up == down == 1``) pass samples through unfiltered, as float64 copies.
"""
from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from obspy import Trace

__all__ = [
    "KAISER_BETA",
    "MAX_RESAMPLE_FACTOR",
    "StreamResampler",
    "fir_taps",
    "resample_array",
    "resample_factors",
    "resample_trace",
]

#: Largest ``up`` or ``down`` factor accepted (a longer filter would be needed beyond it).
MAX_RESAMPLE_FACTOR = 1000

#: Kaiser window parameter of the anti-alias filter (``resample_poly``'s default window).
KAISER_BETA = 5.0

#: Outputs per polyphase branch computed in one pass over the taps (keeps the work in cache).
_BLOCK = 8192

#: Below this many outputs per branch, one (outputs x taps) product and a running sum along
#: the taps (``np.add.accumulate``: the same adds in the same order as the tap loop) replace
#: the per-tap loop, whose call overhead dominates for small chunks.
_SMALL = 128

# Chebyshev coefficients of exp(-x) I0(x) on [0, 8] (Cephes i0.c, as numpy.i0 and
# scipy.special.i0 use them); the Kaiser window's argument never exceeds beta = 5.
_I0A = (
    -4.41534164647933937950e-18, 3.33079451882223809783e-17, -2.43127984654795469359e-16,
    1.71539128555513303061e-15, -1.16853328779934516808e-14, 7.67618549860493561688e-14,
    -4.85644678311192946090e-13, 2.95505266312963983461e-12, -1.72682629144155570723e-11,
    9.67580903537323691224e-11, -5.18979560163526290666e-10, 2.65982372468238665035e-9,
    -1.30002500998624804212e-8, 6.04699502254191894932e-8, -2.67079385394061173391e-7,
    1.11738753912010371815e-6, -4.41673835845875056359e-6, 1.64484480707288970893e-5,
    -5.75419501008210370398e-5, 1.88502885095841655729e-4, -5.76375574538582365885e-4,
    1.63947561694133579842e-3, -4.32430999505057594430e-3, 1.05464603945949983183e-2,
    -2.37374148058994688156e-2, 4.93052842396707084878e-2, -9.49010970480476444210e-2,
    1.71620901522208775349e-1, -3.04682672343198398683e-1, 6.76795274409476084995e-1,
)


def _i0(x: np.ndarray) -> np.ndarray:
    """Modified Bessel function I0 for 0 <= x <= 8, as scipy.special.i0 computes it (Cephes
    Chebyshev series times the C library's ``exp``; numpy's vectorised ``exp`` can differ from
    it in the last bit, so ``math.exp`` is used per element)."""
    y = x / 2.0 - 2.0
    b0 = np.full_like(y, _I0A[0])
    b1 = np.zeros_like(y)
    b2 = b1
    for a in _I0A[1:]:
        b2 = b1
        b1 = b0
        b0 = y * b1 - b2 + a
    return np.array([math.exp(v) for v in x.tolist()], dtype=np.float64) * (0.5 * (b0 - b2))


def fir_taps(up: int, down: int) -> np.ndarray:
    """The anti-alias FIR of ``scipy.signal.resample_poly(x, up, down)``, already times ``up``.

    Equal to ``up * scipy.signal.firwin(2 * half_len + 1, 1 / max_rate, window=("kaiser", 5.0))``
    with ``max_rate = max(up, down)`` and ``half_len = 10 * max_rate``, computed in the same
    order with numpy only. Returns float64, length ``2 * half_len + 1``, symmetric about
    ``half_len``.
    """
    max_rate = max(int(up), int(down))
    half_len = 10 * max_rate
    numtaps = 2 * half_len + 1
    cutoff = 1.0 / max_rate  # relative to the Nyquist frequency of the up-sampled rate
    m = np.arange(0, numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m)
    n = np.arange(0, numtaps, dtype=np.float64)
    alpha = (numtaps - 1) / 2.0
    win = _i0(KAISER_BETA * np.sqrt(1 - ((n - alpha) / alpha) ** 2.0)) / _i0(np.array([KAISER_BETA]))[0]
    h *= win
    h /= np.sum(h)  # unit gain at 0 Hz (firwin's scale=True)
    h *= up
    return h


def _rate(value: object, name: str) -> float:
    """A sampling rate as a float, or ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number of Hz, got {value!r}")
    rate = float(value)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name} must be a finite rate > 0 Hz, got {value!r}")
    if round(rate * 1000) == 0:
        raise ValueError(f"{name} {rate:.10g} Hz is below 1 mHz")
    return rate


def resample_factors(rate_in: float, rate_out: float) -> tuple[int, int]:
    """``(up, down)`` taking ``rate_in`` to ``rate_out`` Hz: the reduced fraction of the two
    rates, each rounded to 1 mHz. ``(1, 1)`` means equal rates.

    Raises:
        ValueError: a rate that is not a finite number > 0 Hz, or a ratio whose ``up`` or
            ``down`` exceeds :data:`MAX_RESAMPLE_FACTOR` (e.g. 333.3333 Hz, 250.0013 Hz);
            the message names the rate.
    """
    fin = _rate(rate_in, "input sampling rate")
    fout = _rate(rate_out, "output sampling rate")
    ratio = Fraction(round(fout * 1000), round(fin * 1000))
    up, down = ratio.numerator, ratio.denominator
    if max(up, down) > MAX_RESAMPLE_FACTOR:
        raise ValueError(
            f"input sampling rate {fin:.10g} Hz cannot be resampled to {fout:.10g} Hz: the rates "
            f"(to 1 mHz) make the fraction {up}/{down}, whose factors exceed "
            f"{MAX_RESAMPLE_FACTOR}; use a nominal digitizer rate (e.g. 50, 100, 200, 250, "
            f"500, 1000 Hz)"
        )
    return up, down


class StreamResampler:
    """Resample one channel chunk by chunk from ``rate_in`` to ``rate_out`` Hz.

    See the module docstring for the filter, the timing and the latency. Typical use::

        rs = StreamResampler(1000.0, 250.0)
        for chunk in chunks:              # contiguous samples of one channel, any sizes
            y = rs.process(chunk)         # outputs rs.n_out - len(y) ... rs.n_out - 1
        tail = rs.flush()                 # end of data (or a gap): the last outputs

    Output sample ``j`` (counted since construction or the last reset) lies at
    ``t0 + j / rate_out`` with ``t0`` the time of the first input sample since then.

    Attributes:
        rate_in, rate_out: Hz.
        up, down: the polyphase factors (``rate_out / rate_in = up / down``).
        half_len: half the filter length, in samples at ``up * rate_in``.
    """

    def __init__(self, rate_in: float, rate_out: float) -> None:
        self.up, self.down = resample_factors(rate_in, rate_out)
        self.rate_in = float(rate_in)
        self.rate_out = float(rate_out)
        up, down = self.up, self.down
        self._identity = up == down == 1
        if self._identity:
            self.half_len = 0
            self._h = np.ones(1)
            self._branches: list[tuple[int, np.ndarray]] = []
            self._kmax = 1
        else:
            self.half_len = 10 * max(up, down)
            self._h = fir_taps(up, down)
            # output m = c + up * t (branch c) uses x[b_c + t * down - k] * g_c[k], k = 0, 1, ...
            self._branches = []
            for c in range(up):
                q = c * down + self.half_len
                self._branches.append((q // up, np.ascontiguousarray(self._h[q % up :: up])))
            self._kmax = max(g.size for _, g in self._branches)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the history and the pending outputs (e.g. after a gap); the next input
        sample is a new first sample (time t0 of the next outputs)."""
        self._n_in = 0
        self._n_out = 0
        self._buf_start = -self._kmax  # global input index of self._buf[0]; x < 0 are zeros
        self._buf = np.zeros(self._kmax, dtype=np.float64)

    @property
    def n_in(self) -> int:
        """Input samples received since construction or the last reset."""
        return self._n_in

    @property
    def n_out(self) -> int:
        """Output samples returned since construction or the last reset (the index of the
        next output sample)."""
        return self._n_out

    @property
    def delay(self) -> float:
        """Latency of the outputs, s: the filter's group delay ``half_len / (up * rate_in)``
        (0 for equal rates). Not a time shift: output times are compensated."""
        return self.half_len / (self.up * self.rate_in)

    @property
    def taps(self) -> np.ndarray:
        """The FIR taps (a copy), ``up`` times the unit-gain low-pass; ``[1.0]`` for equal
        rates."""
        return self._h.copy()

    # ------------------------------------------------------------------ processing

    def _ready(self, n_in: int) -> int:
        """Number of outputs whose inputs are all among the first ``n_in`` samples."""
        return max(0, (n_in * self.up - 1 - self.half_len) // self.down + 1)

    def _compute(self, buf: np.ndarray, m0: int, m1: int) -> np.ndarray:
        """Outputs ``m0 .. m1 - 1`` from ``buf`` (which starts at input ``self._buf_start``)."""
        up, down = self.up, self.down
        out = np.empty(max(m1 - m0, 0), dtype=np.float64)
        if m1 <= m0:
            return out
        acc = np.empty(min(_BLOCK, (m1 - m0 + up - 1) // up), dtype=np.float64)
        tmp = np.empty_like(acc)
        for c, (b, g) in enumerate(self._branches):
            t0 = (m0 - c + up - 1) // up
            t1 = (m1 - c + up - 1) // up
            if 0 < t1 - t0 < _SMALL:  # few outputs (small chunks): one 2-D product
                n = t1 - t0
                a = b + t0 * down - self._buf_start
                seg = buf[a - g.size + 1 : a + down * (n - 1) + 1]
                x = sliding_window_view(seg, g.size)[::down, ::-1]  # x[t, k] = input a + t*down - k
                o = c + up * t0 - m0
                out[o : o + up * (n - 1) + 1 : up] = np.add.accumulate(x * g, axis=1)[:, -1]
                continue
            for ta in range(t0, t1, _BLOCK):
                n = min(_BLOCK, t1 - ta)
                a = b + ta * down - self._buf_start  # buffer index of x[i_hi] of output ta
                span = down * (n - 1) + 1
                sa, st = acc[:n], tmp[:n]
                np.multiply(buf[a : a + span : down], g[0], out=sa)
                for k in range(1, g.size):
                    np.multiply(buf[a - k : a - k + span : down], g[k], out=st)
                    np.add(sa, st, out=sa)
                o = c + up * ta - m0
                out[o : o + up * (n - 1) + 1 : up] = sa
        return out

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed the next contiguous input samples (1-D, any real dtype, any length);
        return the float64 outputs that are now complete (possibly none)."""
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"resampler input must be 1-D samples, got shape {x.shape}")
        if np.ma.isMaskedArray(x):
            raise ValueError("resampler input is a masked array (a gap): split it and reset")
        x = x.astype(np.float64, copy=self._identity)
        self._n_in += x.size
        if self._identity:
            self._n_out += x.size
            return x
        buf = np.concatenate((self._buf, x)) if x.size else self._buf
        m1 = self._ready(self._n_in)
        y = self._compute(buf, self._n_out, m1)
        self._n_out = m1
        # keep what the next outputs need: from x[i_hi(m1) - kmax + 1] on
        lo = (m1 * self.down + self.half_len) // self.up - self._kmax + 1
        cut = min(max(lo - self._buf_start, 0), buf.size)
        self._buf = buf[cut:].copy()
        self._buf_start += cut
        return y

    def flush(self) -> np.ndarray:
        """End of the data (or of a segment before a gap): return the remaining outputs, as
        if zeros followed, up to ``ceil(n_in * up / down)`` outputs in all (resample_poly's
        length), then :meth:`reset`."""
        if self._identity or self._n_in == 0:
            self.reset()
            return np.empty(0, dtype=np.float64)
        m1 = -((-self._n_in * self.up) // self.down)
        need = (m1 - 1) * self.down + self.half_len
        last = need // self.up  # highest input index the last output reads
        pad = max(0, last + 1 - (self._buf_start + self._buf.size))
        buf = np.concatenate((self._buf, np.zeros(pad)))
        y = self._compute(buf, self._n_out, m1)
        self.reset()
        return y


def resample_array(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """A whole 1-D record resampled with :class:`StreamResampler` (``process`` + ``flush``):
    ``ceil(len(x) * up / down)`` float64 samples, the first at the first input's time.
    Equal rates return a float64 copy."""
    rs = StreamResampler(rate_in, rate_out)
    y = rs.process(x)
    tail = rs.flush()
    return np.concatenate((y, tail)) if tail.size else y


def resample_trace(trace: Trace, rate: float) -> Trace:
    """A new :class:`~obspy.core.trace.Trace` at ``rate`` Hz, same ``starttime`` and header
    otherwise, data float64 from :func:`resample_array` (the station's streaming class run
    over the whole trace, not scipy). The input trace is not modified.

    Raises:
        ValueError: bad or unsupported rates (message names the rate and the trace), or a
            masked trace (gaps: split it first, e.g. ``Stream.split()``).
    """
    if np.ma.isMaskedArray(trace.data) and np.ma.is_masked(trace.data):
        raise ValueError(f"{trace.id}: trace has masked samples (gaps); split it first")
    try:
        y = resample_array(np.asarray(trace.data), trace.stats.sampling_rate, rate)
    except ValueError as exc:
        raise ValueError(f"{trace.id}: {exc}") from None
    stats = trace.stats.copy()
    stats.sampling_rate = float(rate)
    stats.npts = y.size
    return Trace(data=y, header=stats)
