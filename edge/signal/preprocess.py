"""The model-input contract: one triggered event -> one fixed-length 3-component window.

The trainer imports this module, so what a model saw in training is byte-for-byte what the
station computes. Change anything here and every model's manifest (``WindowSpec.to_dict``)
stops matching: bump the model, not the station.

Pipeline of :func:`preprocess_stream`, per component, all in float64:

1. **select** the station's traces by the last letter of the channel code (``Z``, ``N``,
   ``E``; ``1`` -> ``N`` and ``2`` -> ``E`` for Z12 sensors). One station and one channel
   code per component, otherwise :class:`PreprocessError`.
2. **merge and cut** the traces onto one sample grid (the grid of the earliest trace)
   spanning ``[t - pre - margin, t - pre + length + margin]``. Where traces overlap the
   later one wins; samples that no trace covers (gaps, or the file not reaching that far)
   are *not real* and become zeros after step 3. NaN/inf inside the cut -> error.
3. **detrend**: a least-squares line through the real samples is removed from them (this
   also removes the mean), then the not-real samples are set to 0.
4. **taper**: every contiguous run of real samples gets a cosine (Hann) ramp at both ends,
   ``taper_fraction * (length_s + 2 * margin_s)`` seconds long (0.8 s by default, always
   inside the margin; shorter when a run is shorter than two ramps). With full data this is
   the usual taper of the cut's two ends; at a gap or where the file ends inside the cut it
   keeps the zero fill from making a step that would ring through the bandpass.
5. **resample** to ``spec.sampling_rate`` when the input rate differs, with
   :func:`edge.signal.resample.resample_array`: the station's streaming polyphase resampler
   run over the whole cut, so a window computed here and one the station computes from
   chunks hold the same samples. Its filter is ``scipy.signal.resample_poly(x, up, down)``'s
   (Kaiser-windowed FIR, beta 5; zero phase, so output sample ``m`` lies at the grid start +
   ``m / spec.sampling_rate``) and its output equals resample_poly's to rounding. ``up/down``
   is the reduced fraction ``spec.sampling_rate / input_rate`` with the rates rounded to
   1 mHz (50 -> 5/1, 100 -> 5/2, 200 -> 5/4, 500 -> 1/2, 1000 -> 1/4 for 250 Hz); ``up`` or
   ``down`` above :data:`MAX_RESAMPLE_FACTOR` is refused (e.g. 333.3333 Hz). Each component
   is resampled on its own, so the components may come at different rates. A component
   recorded *below* the model rate is accepted, but it holds nothing above its own Nyquist
   frequency that the model may have learned from: a warning is logged (once per channel
   and rate pair in a process).
6. **bandpass** at the model rate: ObsPy ``bandpass`` (Butterworth, ``corners``,
   ``zerophase``) from ``freqmin`` to ``freqmax``. Filtering after resampling makes it the
   same digital filter for every input rate, and keeps ``freqmax = 100 Hz`` valid for 100
   and 200 Hz recorders whose Nyquist frequency is at or below it.
7. **calibrate**: with a full instrument ``response`` (StationXML), the cut was already turned
   into ground velocity between steps 4 and 5 (:func:`edge.signal.instrument.remove_response`:
   deconvolution to m/s, which also integrates an accelerometer); with only a flat
   ``sensitivity`` (counts per m/s), divide by it here. A flat sensitivity is right only where
   the sensor is flat in velocity (not below a geophone's natural frequency, never for an
   accelerometer): give the response whenever there is one.
8. **trim** to exactly ``n_samples`` starting at the output sample nearest to
   ``t - pre`` (within half a sample, 2 ms at 250 Hz); samples beyond the data are 0.

Failures (:class:`PreprocessError`, a ``ValueError``): no Z, several stations or several
channel codes for one component, mixed sampling rates in one component, an unsupported
rate ratio, NaN/inf in the used data, and for **Z** also: empty traces, no samples inside the
window, or a constant (all-equal) trace. A **horizontal** that is missing, empty, has no
samples inside the window, or is constant (a dead channel) becomes zeros with
``present=False`` and a note in :attr:`Window.flags`; its NaN/inf still raise, because they
mean a corrupt file rather than a quiet channel.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from edge.signal.iir import bandpass  # ObsPy's bandpass, bit for bit, without obspy.signal's init
from edge.signal.instrument import remove_response
from edge.signal.resample import MAX_RESAMPLE_FACTOR, resample_array
from edge.signal.resample import resample_factors as _resample_factors

__all__ = [
    "COMPONENT_ALIASES",
    "LOG_PEAK_QUANTILES",
    "MAX_RESAMPLE_FACTOR",
    "PreprocessError",
    "Window",
    "WindowSpec",
    "component_of",
    "normalize",
    "preprocess_stream",
    "resample_factors",
]

#: Last letter of a channel code -> canonical component. ``1``/``2`` are the horizontals of
#: Z12 sensors (unknown azimuth); they are treated as N and E.
COMPONENT_ALIASES: dict[str, str] = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}

log = logging.getLogger(__name__)

#: (SEED id, input rate, model rate) already warned about as upsampled (bounded).
_warned_upsampled: set[tuple[str, float, float]] = set()


class PreprocessError(ValueError):
    """A stream cannot become a model window; the message names the problem and the trace."""


@dataclass(frozen=True)
class WindowSpec:
    """Everything that defines a model input window. Goes into every model manifest.

    Attributes:
        sampling_rate: model sampling rate, Hz.
        pre_s: window start before the trigger-on time, seconds.
        length_s: window length, seconds (``n_samples = length_s * sampling_rate``).
        freqmin: bandpass lower corner, Hz.
        freqmax: bandpass upper corner, Hz (below the model Nyquist frequency).
        corners: Butterworth corners (order) of the bandpass.
        zerophase: filter forwards and backwards (no phase shift, doubled order).
        taper_fraction: cosine taper at each end, as a fraction of the cut length
            ``length_s + 2 * margin_s`` (ObsPy's ``max_percentage`` meaning); the taper must
            fit inside the margin.
        margin_s: extra data cut on both sides before filtering, seconds, so filter and
            taper edge effects fall outside the window.
        components: output rows, canonical names (``Z``, ``N``, ``E``); must include Z.
    """

    sampling_rate: float = 250.0
    pre_s: float = 2.0
    length_s: float = 12.0
    freqmin: float = 1.0
    freqmax: float = 100.0
    corners: int = 4
    zerophase: bool = True
    taper_fraction: float = 0.05
    margin_s: float = 2.0
    components: tuple[str, ...] = ("Z", "N", "E")

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        problems = []
        if not (self.sampling_rate > 0 and math.isfinite(self.sampling_rate)):
            problems.append(f"sampling_rate must be > 0 Hz, got {self.sampling_rate}")
        elif abs(self.length_s * self.sampling_rate - round(self.length_s * self.sampling_rate)) > 1e-6:
            problems.append("length_s * sampling_rate must be a whole number of samples")
        if not self.length_s > 0:
            problems.append(f"length_s must be > 0 s, got {self.length_s}")
        if not 0 <= self.pre_s < self.length_s:
            problems.append(f"pre_s must be in [0, length_s), got {self.pre_s}")
        if not 0 < self.freqmin < self.freqmax < 0.5 * self.sampling_rate:
            problems.append(
                f"need 0 < freqmin < freqmax < Nyquist ({0.5 * self.sampling_rate} Hz), "
                f"got {self.freqmin}..{self.freqmax} Hz"
            )
        if int(self.corners) != self.corners or self.corners < 1:
            problems.append(f"corners must be a positive integer, got {self.corners}")
        if not self.margin_s >= 0:
            problems.append(f"margin_s must be >= 0 s, got {self.margin_s}")
        if not 0 <= self.taper_fraction < 0.5:
            problems.append(f"taper_fraction must be in [0, 0.5), got {self.taper_fraction}")
        elif self.taper_s > self.margin_s + 1e-9:
            problems.append(
                f"taper ({self.taper_s:g} s) does not fit inside the margin ({self.margin_s:g} s)"
            )
        comps = self.components
        if len(set(comps)) != len(comps) or not set(comps) <= {"Z", "N", "E"} or "Z" not in comps:
            problems.append(f"components must be distinct names from Z, N, E including Z, got {comps}")
        if problems:
            raise ValueError("invalid WindowSpec: " + "; ".join(problems))

    @property
    def n_samples(self) -> int:
        """Samples per component in the window (3000 by default)."""
        return int(round(self.length_s * self.sampling_rate))

    @property
    def taper_s(self) -> float:
        """Length of the cosine taper at each end of the cut, seconds."""
        return self.taper_fraction * (self.length_s + 2.0 * self.margin_s)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (components as a list) for model manifests."""
        d = asdict(self)
        d["components"] = list(self.components)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowSpec:
        """Inverse of :meth:`to_dict`. Unknown keys raise ``ValueError`` (a manifest from a
        newer contract must not be read silently as an older one); missing keys take the
        defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown WindowSpec keys: {', '.join(unknown)}")
        kw = dict(d)
        if "components" in kw:
            kw["components"] = tuple(kw["components"])
        return cls(**kw)


@dataclass(frozen=True, eq=False)
class Window:
    """A preprocessed event window, the model input before :func:`normalize`.

    Attributes:
        data: float32 array ``(len(spec.components), n_samples)``, rows in ``spec.components``
            order (Z, N, E). Ground velocity in m/s when a sensitivity was given, else
            counts (filtered). Rows of absent components are zeros.
        starttime: time of ``data[:, 0]`` (within half a sample of trigger - pre_s).
        sampling_rate: Hz.
        present: per row, whether real data of that component went into it.
        coverage: fraction (0..1) of the window's samples backed by real data (the minimum
            over present components); the rest was a gap or beyond the file.
        units: ``"m/s"`` or ``"counts"``.
        gap_fraction: fraction of the window's samples that were gaps between traces and
            were zero-filled (the maximum over present components).
        channels: the SEED id used for each row, ``""`` for an absent one.
        flags: notes such as ``"N: constant trace (dead channel), set to zero"``.
    """

    data: np.ndarray
    starttime: UTCDateTime
    sampling_rate: float
    present: tuple[bool, ...]
    coverage: float
    units: str
    gap_fraction: float = 0.0
    channels: tuple[str, ...] = ()
    flags: tuple[str, ...] = field(default=())

    @property
    def n_samples(self) -> int:
        """Samples per component."""
        return int(self.data.shape[1])


def component_of(channel: str) -> str | None:
    """Canonical component (``Z``/``N``/``E``) of a channel code, or ``None`` when its last
    letter is none of Z, N, E, 1, 2."""
    if not channel:
        return None
    return COMPONENT_ALIASES.get(channel[-1].upper())


def resample_factors(input_rate: float, output_rate: float) -> tuple[int, int]:
    """``(up, down)`` taking ``input_rate`` to ``output_rate`` Hz
    (:func:`edge.signal.resample.resample_factors`): both rates rounded to 1 mHz and the
    ratio reduced; ``(1, 1)`` means no resampling.

    Raises:
        PreprocessError: an invalid rate, or a factor above :data:`MAX_RESAMPLE_FACTOR`.
    """
    try:
        return _resample_factors(input_rate, output_rate)
    except ValueError as exc:
        raise PreprocessError(str(exc)) from None


#: levels of the quantiles of the training windows' ``log10(peak)`` that a run records and a
#: bundle carries (``training_data.log_peak_quantiles``): the amplitudes a window of unknown
#: calibration is classified over (:mod:`edge.model.inference`)
LOG_PEAK_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


def normalize(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale-free waveform plus log amplitude, the way the int8 model is fed.

    Args:
        data: window data ``(n_components, n)`` (m/s or counts).

    Returns:
        ``(data / peak)`` as float32 in [-1, 1] and ``log10(peak)`` as a float, where ``peak``
        is the largest absolute value over all components (same units as ``data``).

    Raises:
        PreprocessError: the peak is 0 or not finite.
    """
    x = np.asarray(data, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(peak):
        raise PreprocessError("cannot normalize: data contain NaN or inf")
    if peak == 0.0:
        raise PreprocessError("cannot normalize: all samples are zero (peak 0)")
    return (x / peak).astype(np.float32), math.log10(peak)


# --------------------------------------------------------------------------- internals


@dataclass
class _Component:
    """One component cut onto its own input sample grid."""

    seed_id: str
    values: np.ndarray  # float64, the cut (not-real samples hold 0 after detrending)
    real: np.ndarray  # bool, sample backed by data
    sampling_rate: float  # Hz
    t0: UTCDateTime  # time of values[0]


def _group_components(st: Stream, spec: WindowSpec) -> dict[str, list[Trace]]:
    """Traces of the spec's components, by canonical component; checks one station."""
    groups: dict[str, list[Trace]] = {}
    stations = set()
    for tr in st:
        comp = component_of(tr.stats.channel)
        if comp is None or comp not in spec.components:
            continue
        stations.add((tr.stats.network, tr.stats.station, tr.stats.location))
        groups.setdefault(comp, []).append(tr)
    if len(stations) > 1:
        names = ", ".join(sorted(".".join(s) for s in stations))
        raise PreprocessError(f"stream holds several stations/locations ({names}); select one first")
    for comp, traces in groups.items():
        codes = sorted({tr.stats.channel for tr in traces})
        if len(codes) > 1:
            raise PreprocessError(
                f"ambiguous {comp} component: channels {', '.join(codes)}; select one first"
            )
    return groups


def _cut(traces: list[Trace], t_from: UTCDateTime, t_to: UTCDateTime) -> _Component:
    """Merge ``traces`` (one channel) onto the grid of the earliest and cut [t_from, t_to]."""
    seed_id = traces[0].id
    rates = {float(tr.stats.sampling_rate) for tr in traces}
    if len(rates) > 1:
        raise PreprocessError(f"{seed_id}: traces with different sampling rates {sorted(rates)} Hz")
    fs = rates.pop()
    if not (fs > 0 and math.isfinite(fs)):
        raise PreprocessError(f"{seed_id}: invalid sampling rate {fs} Hz")
    traces = sorted((tr for tr in traces if tr.stats.npts > 0), key=lambda tr: tr.stats.starttime)
    if not traces:
        raise _Quiet(f"{seed_id}: empty trace (no samples)")
    anchor = traces[0].stats.starttime
    k0 = int(round((t_from - anchor) * fs))
    n = int(round((t_to - t_from) * fs)) + 1
    values = np.zeros(n, dtype=np.float64)
    real = np.zeros(n, dtype=bool)
    for tr in traces:
        offset = int(round((tr.stats.starttime - anchor) * fs)) - k0
        lo, hi = max(0, -offset), min(tr.stats.npts, n - offset)
        if hi <= lo:
            continue
        seg = np.ma.asarray(tr.data[lo:hi])
        ok = ~np.ma.getmaskarray(seg)
        vals = np.asarray(seg.filled(0) if np.ma.isMaskedArray(seg) else seg, dtype=np.float64)
        if not np.all(np.isfinite(vals[ok])):
            raise PreprocessError(f"{seed_id}: data contain NaN or inf")
        dst = slice(offset + lo, offset + hi)
        # later traces overwrite earlier ones where they overlap; masked samples do not
        values[dst] = np.where(ok, vals, values[dst])
        real[dst] |= ok
    return _Component(seed_id, values, real, fs, anchor + k0 / fs)


class _Quiet(PreprocessError):
    """A component with nothing usable: fatal for Z, an absent row for a horizontal."""


def _detrend_and_fill(c: _Component) -> None:
    """Remove the least-squares line through the real samples; zero the rest (in place)."""
    idx = np.flatnonzero(c.real)
    if idx.size == 0:
        raise _Quiet(f"{c.seed_id}: no samples inside the cut")
    y = c.values[idx]
    if np.all(y == y[0]):
        raise _Quiet(f"{c.seed_id}: constant trace (all samples equal {y[0]:g})")
    x = idx.astype(np.float64)
    xm, ym = x.mean(), y.mean()
    xc = x - xm
    sxx = float(np.dot(xc, xc))
    slope = float(np.dot(xc, y - ym)) / sxx if sxx > 0 else 0.0
    out = np.zeros_like(c.values)
    out[idx] = y - ym - slope * xc
    c.values = out


def _taper_runs(c: _Component, taper_s: float) -> None:
    """Cosine (Hann) ramps at both ends of every contiguous run of real samples (in place)."""
    n_taper = int(round(taper_s * c.sampling_rate))
    if n_taper < 2:
        return
    edges = np.diff(np.concatenate(([0], c.real.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for a, b in zip(starts, stops):
        m = min(n_taper, (b - a) // 2)
        if m < 1:
            c.values[a:b] = 0.0
            continue
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.arange(m) / m))
        c.values[a : a + m] *= ramp
        c.values[b - m : b] *= ramp[::-1]


def _to_model_rate(c: _Component, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Resampled values and the real mask on the output grid (nearest input sample)."""
    try:
        up, down = resample_factors(c.sampling_rate, spec.sampling_rate)
    except PreprocessError as exc:
        raise PreprocessError(f"{c.seed_id}: {exc}") from None
    if up == down == 1:
        return c.values, c.real
    y = resample_array(c.values, c.sampling_rate, spec.sampling_rate)
    m = np.arange(y.size, dtype=np.int64)
    j = (2 * m * down + up) // (2 * up)  # nearest input sample, integer arithmetic
    real = np.zeros(y.size, dtype=bool)
    ok = j < c.real.size
    real[ok] = c.real[j[ok]]
    return y, real


def _warn_upsampled(seed_id: str, rate: float, spec: WindowSpec) -> None:
    """Log that a component recorded below the model rate was upsampled, once per channel
    and rate pair (a batch of thousands of events must not repeat it)."""
    key = (seed_id, rate, spec.sampling_rate)
    if key in _warned_upsampled:
        return
    if len(_warned_upsampled) < 10_000:
        _warned_upsampled.add(key)
    log.warning("%s: recorded at %g Hz, below the model's %g Hz: upsampled; the window holds "
                "nothing above %g Hz (the model's band is %g-%g Hz)", seed_id, rate,
                spec.sampling_rate, 0.5 * rate, spec.freqmin, spec.freqmax)


def _sensitivity_of(
    sensitivity: float | Mapping[str, float] | None, seed_id: str, channel: str, comp: str
) -> float | None:
    if sensitivity is None:
        return None
    if isinstance(sensitivity, Mapping):
        for key in (seed_id, channel, comp, channel[-1:]):
            if key in sensitivity:
                value = float(sensitivity[key])
                break
        else:
            raise PreprocessError(f"no sensitivity given for {seed_id}")
    else:
        value = float(sensitivity)
    if not (value > 0 and math.isfinite(value)):
        raise PreprocessError(f"{seed_id}: sensitivity must be a finite number > 0 counts per m/s, got {value}")
    return value


def _response_of(response: Any, seed_id: str, channel: str, comp: str) -> Any:
    """The ObsPy ``Response`` for this channel out of one response or a mapping, or None."""
    if response is None:
        return None
    if isinstance(response, Mapping):
        for key in (seed_id, channel, comp, channel[-1:]):
            if key in response:
                return response[key]
        raise PreprocessError(f"no instrument response given for {seed_id}")
    return response


def _window_slice(y: np.ndarray, start: int, n: int) -> np.ndarray:
    """``y[start:start+n]`` with zeros where it falls outside ``y``."""
    out = np.zeros(n, dtype=y.dtype)
    lo, hi = max(start, 0), min(start + n, y.size)
    if hi > lo:
        out[lo - start : hi - start] = y[lo:hi]
    return out


def preprocess_stream(
    st: Stream,
    trigger_time: UTCDateTime,
    spec: WindowSpec | None = None,
    sensitivity: float | Mapping[str, float] | None = None,
    response: Any = None,
) -> Window:
    """Cut, clean, filter and resample one station's event into the model window.

    Args:
        st: traces of one station (any of Z/N/E or Z/1/2; other channels are ignored), raw
            counts. Not modified.
        trigger_time: trigger-on time (UTC); the window starts ``spec.pre_s`` before it.
        spec: the window contract; default :class:`WindowSpec()`.
        sensitivity: overall sensitivity in counts per m/s, one value for all components or
            a mapping keyed by SEED id, channel code or component letter; ``None`` keeps
            counts.
        response: ObsPy ``Response`` (ground motion -> counts), one for all components or a
            mapping keyed like ``sensitivity``; a component with a response is deconvolved
            to m/s (step 7) and ``sensitivity`` is not used for it.

    Returns:
        The :class:`Window` (see the module docstring for each step).

    Raises:
        PreprocessError: when the stream cannot make a valid window; the message says why.
    """
    spec = spec or WindowSpec()
    trigger_time = UTCDateTime(trigger_time)
    groups = _group_components(st, spec)
    if "Z" not in groups:
        channels = ", ".join(sorted({tr.id for tr in st})) or "none"
        raise PreprocessError(f"no Z component (vertical) in stream; channels: {channels}")

    w_start = trigger_time - spec.pre_s
    t_from = w_start - spec.margin_s
    t_to = w_start + spec.length_s + spec.margin_s
    n = spec.n_samples
    fs = spec.sampling_rate

    rows: list[np.ndarray] = []
    present: list[bool] = []
    channels: list[str] = []
    flags: list[str] = []
    coverages: list[float] = []
    gaps: list[float] = []
    starttime: UTCDateTime | None = None
    for comp in spec.components:
        traces = groups.get(comp)
        if not traces:
            rows.append(np.zeros(n, dtype=np.float32))
            present.append(False)
            channels.append("")
            flags.append(f"{comp}: missing, set to zero")
            continue
        try:
            c = _cut(traces, t_from, t_to)
            _detrend_and_fill(c)
            _taper_runs(c, spec.taper_s)
            resp = _response_of(response, c.seed_id, traces[0].stats.channel, comp)
            if resp is not None:
                try:
                    c.values = remove_response(c.values, c.sampling_rate, resp, spec.freqmin)
                except Exception as exc:  # noqa: BLE001 -- evalresp raises many kinds
                    raise PreprocessError(f"{c.seed_id}: instrument response: {exc}") from None
            y, real = _to_model_rate(c, spec)
            i0 = int(round((w_start - c.t0) * fs))
            real_w = _window_slice(real, i0, n)
            if not real_w.any():
                raise _Quiet(f"{c.seed_id}: no samples inside the window")
        except _Quiet as exc:
            if comp == "Z":
                raise PreprocessError(str(exc)) from None
            rows.append(np.zeros(n, dtype=np.float32))
            present.append(False)
            channels.append("")
            flags.append(f"{comp}: {exc}, set to zero")
            continue
        if round(c.sampling_rate * 1000) < round(fs * 1000):  # as resample_factors rounds
            _warn_upsampled(c.seed_id, c.sampling_rate, spec)
        y = bandpass(y, spec.freqmin, spec.freqmax, df=fs, corners=int(spec.corners), zerophase=spec.zerophase)
        sens = None if resp is not None else _sensitivity_of(
            sensitivity, c.seed_id, traces[0].stats.channel, comp)
        if sens is not None:
            y = y / sens
        rows.append(_window_slice(y, i0, n).astype(np.float32))
        present.append(True)
        channels.append(c.seed_id)
        cov = float(real_w.mean())
        inside = np.flatnonzero(real)
        span = np.zeros_like(real)
        span[inside[0] : inside[-1] + 1] = True
        gap = float((_window_slice(span, i0, n) & ~real_w).mean())
        coverages.append(cov)
        gaps.append(gap)
        if gap > 0:
            flags.append(f"{comp}: {gap:.1%} of the window zero-filled gaps")
        if comp == "Z":
            starttime = c.t0 + i0 / fs

    assert starttime is not None  # Z is present or we raised
    return Window(
        data=np.stack(rows).astype(np.float32, copy=False),
        starttime=starttime,
        sampling_rate=fs,
        present=tuple(present),
        coverage=min(coverages),
        units="m/s" if (sensitivity is not None or response is not None) else "counts",
        gap_fraction=max(gaps),
        channels=tuple(channels),
        flags=tuple(flags),
    )
