"""Streaming STA/LTA trigger with coincidence: chunks of samples in, trigger transitions out.

The station sees its data chunk by chunk (a few hundred ms per channel); this module gives,
on those chunks, the triggers ObsPy gives on the whole trace:

* **Band-pass**: the Butterworth band-pass of :func:`obspy.signal.filter.bandpass`
  (``Trace.filter("bandpass", ..., zerophase=False)``): same design (``iirfilter(corners,
  [freqmin, freqmax] / Nyquist, btype="band", ftype="butter", output="sos")``), applied
  causally with :func:`scipy.signal.sosfilt` carrying the filter state ``zi`` from chunk to
  chunk, so the filtered samples equal the whole-trace ones.
* **Characteristic function** (``method``):

  ``"recstalta"``
      :func:`obspy.signal.trigger.recursive_sta_lta`. ObsPy's C function
      (``clibsignal.recstalta``) always starts from ``sta = lta = 0`` and cannot take a
      state, so it is not used; its two recursions ``sta = csta*x**2 + (1-csta)*sta`` and
      ``lta = clta*x**2 + (1-clta)*lta`` are first-order IIR filters of the squared signal,
      run here with :func:`scipy.signal.sosfilt` and a carried state. That is the same
      arithmetic in the same order as the C loop (the tests check the result equals
      ObsPy's, in practice bit for bit), including the C code's quirks: the first sample of
      the data is skipped and the first ``nlta`` values are exactly 0.
  ``"classicstalta"``
      :func:`obspy.signal.trigger.classic_sta_lta`, computed by ObsPy's C function
      (``clibsignal.stalta``) itself: a window needs only the last ``nlta`` samples, so each
      chunk is run through the C code behind the ``nlta - 1`` filtered samples before it.
      The first ``nlta - 1`` values are 0, as ObsPy's.

  ``nsta = int(sta_s * sampling_rate)`` and ``nlta = int(lta_s * sampling_rate)`` samples,
  as :meth:`obspy.core.trace.Trace.trigger` converts them.
* **Per-channel on/off**: the samples of :func:`obspy.signal.trigger.trigger_onset`
  (``thres1 = on``, ``thres2 = off``, ``max_len = int(max_duration_s * sampling_rate +
  0.5)`` as :func:`~obspy.signal.trigger.coincidence_trigger` passes it): on at the first
  sample with ratio >= ``on``, off at the last sample with ratio >= ``off`` before it falls
  below; after a ``max_len`` cut the ratio must fall below ``on`` and rise again. Two
  additions: ``hold_s`` (the trigger stays on ``hold_s`` after the ratio falls below
  ``off``; coming back above ``off`` within the hold continues it; trigger-off is then the
  end of the hold) and the **warm-up** (below).
* **Coincidence** across channels (components, stations): an event goes on when the sum of
  the weights of the channels on at that moment reaches ``coincidence_sum``; its
  trigger-on is the first on among those channels. Channels that trigger while it is on
  join it, and it goes off when the last of its channels goes off: trigger-off and duration
  are those of the union of its channels' triggers, as in
  :func:`obspy.signal.trigger.coincidence_trigger`. (ObsPy counts the sum over chains of
  overlapping triggers; here the channels must be on at the same time, which is what a
  station can decide on the spot. On ObsPy's own UH test data both give the same events.)
* **Event rules**: an event shorter than ``min_duration_s`` is withdrawn ("cancel", after
  its "on"); one still on ``max_duration_s`` after trigger-on is closed there
  (``closed_by="max_duration"``; its channels must go off before they count again); after
  an event's off no channel trigger starting within ``dead_time_s`` counts.
* **Warm-up and gaps**: a chunk whose start time is not within half a sample of the end of
  the channel's previous chunk starts a new segment: filter and STA/LTA state restart from
  zero (as ObsPy would on a new Trace). No trigger in the first ``warmup_s`` of a segment
  (None: ``lta_s``; the ratio is 0 for the first ``lta_s`` anyway), and the first trigger
  of a segment needs the ratio to have fallen below ``off`` after the warm-up: the edge of
  a segment is treated as a trigger in progress. Right after the warm-up the recursive LTA
  has seen only ``lta_s`` of data (about 63 % of its level) and a restarted filter may
  still ring, so the ratio there is too high; ObsPy's ``trigger_onset`` triggers on it
  (e.g. at the first valid sample of ObsPy's UH1 recording), this trigger does not: a
  segment edge never triggers. This is the one place where the on/off samples differ from
  ``trigger_onset`` on the whole trace. A channel on when its data breaks off goes off at
  its last sample; an event that ends that way has ``closed_by="gap"``. Duplicated samples
  (a chunk overlapping the previous one on the same sample grid) are dropped.

Chunks may have any size and the channels interleave in any order, as long as each channel
is fed in time order and no more than ``max_lag_s`` (10 s) behind the others: an event
decision at time t waits until every live channel has data up to t, so the result does not
depend on how the chunks are cut (the tests check this). A channel further behind is not
waited for (a dead channel must not hold up the alert); its transitions are then used when
they come. (So feeding whole traces one after the other is not a coincidence trigger: the
first channel's triggers are decided before the others are seen.)

Times are :class:`~obspy.core.utcdatetime.UTCDateTime`; internally integer nanoseconds.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np
from obspy import UTCDateTime
from scipy.signal import iirfilter, sosfilt

__all__ = [
    "METHODS",
    "StaLtaStream",
    "StreamingTrigger",
    "Transition",
    "TriggerConfig",
    "TriggerEvent",
    "bandpass_sos",
]

log = logging.getLogger(__name__)

#: the characteristic functions :class:`StreamingTrigger` computes (ObsPy's names)
METHODS = ("recstalta", "classicstalta")

_TINY = np.finfo(np.float64).tiny



def _sosfilt_inplace(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    """:func:`scipy.signal.sosfilt` of ``x`` (shape (1, n), float64, C order) in place,
    carrying the state ``zi`` (shape (1, sections, 2)) in place too."""
    y, z = sosfilt(sos, x[0], zi=zi[0])
    x[0] = y
    zi[0] = z


try:  # scipy's in-place kernel behind sosfilt: the same arithmetic without the ~40 us of
    # argument checks per call that would dominate 25-sample chunks
    from scipy.signal._sosfilt import _sosfilt as _kernel
except ImportError:  # pragma: no cover - another scipy layout: the public function
    _kernel = _sosfilt_inplace


# --------------------------------------------------------------------------- configuration


@dataclass
class TriggerConfig:
    """``[trigger]``: the streaming STA/LTA trigger.

    Attributes:
        method: characteristic function, ``"recstalta"`` (ObsPy's ``recursive_sta_lta``)
            or ``"classicstalta"`` (``classic_sta_lta``).
        sta_s: short-term average window (s).
        lta_s: long-term average window (s); > ``sta_s``.
        on: STA/LTA ratio that turns a channel's trigger on.
        off: STA/LTA ratio below which it turns off; 0 < ``off`` < ``on``.
        freqmin: band-pass low corner (Hz).
        freqmax: band-pass high corner (Hz); at or above Nyquist ObsPy (and this trigger)
            applies a high-pass at ``freqmin`` instead.
        corners: band-pass corners (filter order per side, as ObsPy's ``corners``).
        min_duration_s: an event shorter than this is withdrawn ("cancel") (s).
        max_duration_s: an event (and a channel trigger) still on after this long is
            closed (s).
        dead_time_s: after an event's off, channel triggers starting within this long do
            not count (s).
        hold_s: a channel's trigger stays on this long after its ratio falls below
            ``off`` (s); back above ``off`` within it, the trigger goes on.
        coincidence_sum: sum of the weights of the channels on at once that turns an event
            on.
        weights: weight of a channel in the coincidence sum, keyed by SEED id
            (``"XX.S1..HHZ"``) or channel code (``"HHZ"``); a channel not listed weighs 1;
            weight 0 leaves the channel out.
        warmup_s: no trigger in the first ``warmup_s`` of data of a channel and after each
            gap (s); None: ``lta_s``.
    """

    method: str = "recstalta"
    sta_s: float = 0.2
    lta_s: float = 10.0
    on: float = 5.0
    off: float = 1.5
    freqmin: float = 1.0
    freqmax: float = 20.0
    corners: int = 4
    min_duration_s: float = 0.0
    max_duration_s: float = 120.0
    dead_time_s: float = 0.0
    hold_s: float = 0.0
    coincidence_sum: float = 1.0
    weights: dict[str, float] = field(default_factory=dict)
    warmup_s: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TriggerConfig":
        """Build and validate from a mapping of field names to values (a parsed
        ``[trigger]`` table); missing keys take their default. Raises ValueError whose
        message starts with the key, e.g. ``"sta_s: must be > 0, got -1"`` (all problems,
        joined with ``"; "``)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a table of trigger settings, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        problems = [f"{k}: unknown key" + _did_you_mean(str(k), names)
                    for k in d if k not in names]
        values: dict[str, Any] = {}
        for key, value in d.items():
            if key not in names:
                continue
            problem = _type_problem(key, value)
            if problem:
                problems.append(problem)
            else:
                values[key] = _normalise(key, value)
        if problems:
            raise ValueError("; ".join(problems))
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (``weights`` copied); an unset ``warmup_s`` is left
        out, so ``from_dict(to_dict())`` gives an equal configuration."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["weights"] = dict(self.weights)
        return {k: v for k, v in out.items() if v is not None}

    def validate(self) -> None:
        """Check types and ranges; raises ValueError naming the key (see :meth:`from_dict`)."""
        problems = []
        for f in fields(self):
            p = _type_problem(f.name, getattr(self, f.name))
            if p:
                problems.append(p)
        if not problems:
            problems = self._range_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _range_problems(self) -> list[str]:
        out: list[str] = []

        def bad(key: str, rule: str, extra: str = "") -> None:
            out.append(f"{key}: must be {rule}{extra}, got {_show(getattr(self, key))}")

        if self.method not in METHODS:
            out.append(f"method: must be one of {', '.join(_show(m) for m in METHODS)}, "
                       f"got {_show(self.method)}")
        if not self.sta_s > 0:
            bad("sta_s", "> 0")
        if not self.lta_s > self.sta_s:
            bad("lta_s", "> sta_s", f" = {_show(self.sta_s)}")
        if not self.off > 0:
            bad("off", "> 0")
        if not self.on > self.off:
            bad("on", "> off", f" = {_show(self.off)}")
        if not self.freqmin > 0:
            bad("freqmin", "> 0")
        if not self.freqmax > self.freqmin:
            bad("freqmax", "> freqmin", f" = {_show(self.freqmin)}")
        if not 1 <= self.corners <= 20:
            bad("corners", "within [1, 20]")
        if not self.min_duration_s >= 0:
            bad("min_duration_s", ">= 0")
        if not self.max_duration_s > 0:
            bad("max_duration_s", "> 0")
        elif not self.max_duration_s > self.min_duration_s:
            bad("max_duration_s", "> min_duration_s", f" = {_show(self.min_duration_s)}")
        if not self.dead_time_s >= 0:
            bad("dead_time_s", ">= 0")
        if not self.hold_s >= 0:
            bad("hold_s", ">= 0")
        if not self.coincidence_sum > 0:
            bad("coincidence_sum", "> 0")
        for k, w in self.weights.items():
            if not k:
                out.append("weights: a key must be a SEED id or channel code, got \"\"")
            elif not w >= 0:
                out.append(f"weights.{k}: must be >= 0, got {_show(w)}")
        if self.warmup_s is not None and not self.warmup_s >= 0:
            bad("warmup_s", ">= 0")
        return out

    def weight(self, seed_id: str) -> float:
        """The coincidence weight of a channel: ``weights[seed_id]``, else
        ``weights[channel code]``, else 1."""
        w = self.weights.get(seed_id)
        if w is None:
            w = self.weights.get(seed_id.rsplit(".", 1)[-1], 1.0)
        return float(w)


_INT_KEYS = {"corners"}
_STR_KEYS = {"method"}
_OPTIONAL_KEYS = {"warmup_s"}


def _show(v: Any) -> str:
    """A value in a message: -1.0 as -1, strings quoted."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _number_problem(v: Any) -> str | None:
    if not _is_number(v):
        return f"expected a number, got {_describe(v)}"
    if not math.isfinite(float(v)):
        return f"must be a finite number, got {_show(v)}"
    return None


def _describe(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return f"boolean {str(bool(v)).lower()}"
    if v is None:
        return "nothing (None)"
    if isinstance(v, str):
        return f"string {_show(v)}"
    if isinstance(v, (int, np.integer)):
        return f"integer {v}"
    if isinstance(v, (float, np.floating)):
        return f"float {v!r}"
    return f"{type(v).__name__} {v!r}"


def _type_problem(key: str, v: Any) -> str | None:
    """``"key: problem"`` when ``v`` has the wrong type for field ``key``, else None."""
    if key in _STR_KEYS:
        return None if isinstance(v, str) else f"{key}: expected a string, got {_describe(v)}"
    if key in _INT_KEYS:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return None
        return f"{key}: expected an integer, got {_describe(v)}"
    if key == "weights":
        if not isinstance(v, Mapping):
            return f"{key}: expected a table of numbers, got {_describe(v)}"
        for k, w in v.items():
            if not isinstance(k, str):
                return f"{key}: keys must be strings (SEED id or channel code), got {_describe(k)}"
            p = _number_problem(w)
            if p:
                return f"{key}.{k}: {p}"
        return None
    if key in _OPTIONAL_KEYS and v is None:
        return None
    p = _number_problem(v)
    return None if p is None else f"{key}: {p}"


def _normalise(key: str, v: Any) -> Any:
    if key in _STR_KEYS or (key in _OPTIONAL_KEYS and v is None):
        return v
    if key in _INT_KEYS:
        return int(v)
    if key == "weights":
        return {str(k): float(w) for k, w in v.items()}
    return float(v)


def _did_you_mean(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def bandpass_sos(freqmin: float, freqmax: float, sampling_rate: float, corners: int = 4) -> np.ndarray:
    """Second-order sections of ObsPy's Butterworth band-pass
    (:func:`obspy.signal.filter.bandpass`): corners in Hz, ``sampling_rate`` in Hz. As
    ObsPy, a high corner at or above Nyquist gives a high-pass at ``freqmin`` (with a logged
    warning) and a low corner above Nyquist is a ValueError."""
    fe = 0.5 * sampling_rate
    low, high = freqmin / fe, freqmax / fe
    if high - 1.0 > -1e-6:
        log.warning("band-pass high corner %g Hz is at or above Nyquist (%g Hz) of a %g Hz "
                    "channel: applying a high-pass at %g Hz instead (as ObsPy)",
                    freqmax, fe, sampling_rate, freqmin)
        if low > 1:
            raise ValueError(f"freqmin: {freqmin:g} Hz is above Nyquist ({fe:g} Hz)")
        return iirfilter(corners, low, btype="highpass", ftype="butter", output="sos")
    if low > 1:
        raise ValueError(f"freqmin: {freqmin:g} Hz is above Nyquist ({fe:g} Hz)")
    return iirfilter(corners, [low, high], btype="band", ftype="butter", output="sos")


# --------------------------------------------------------------------------- the cft


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
            from obspy.signal.headers import clibsignal, head_stalta_t

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
            _sosfilt_inplace(self.sos, x, self.zi)
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
            _kernel(self.sos, x, self.zi)
        i0 = self.n
        self.n = i0 + m
        if self._stalta is not None:
            return self._classic(self._x0)
        buf = self._buf
        np.multiply(x, x, out=buf)  # both rows: x**2
        if i0 == 0:
            buf[:, 0] = 0.0  # ObsPy's C loop starts at sample 1
        lta_state = self.zl[0, 0, 0]  # (1 - clta) * the last lta
        _kernel(self.sos_sta, self._r0, self.zs)
        _kernel(self.sos_lta, self._r1, self.zl)
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


# --------------------------------------------------------------------------- events


@dataclass
class TriggerEvent:
    """A coincidence trigger (one event), as carried by a :class:`Transition`.

    Attributes:
        trigger_on: time of the first on among the channels that made the coincidence.
        trigger_off: time of the last off among its channels (None while on).
        cft_peak: highest STA/LTA ratio of its channels' triggers so far.
        channels: SEED ids of the channels that triggered, in order of joining.
        closed_by: why it ended: "off", "max_duration", "gap" (the data of its last
            channel broke off), "end of data" (:meth:`StreamingTrigger.flush`); None while on.
        coincidence_sum: sum of the weights of ``channels``.
    """

    trigger_on: UTCDateTime
    trigger_off: UTCDateTime | None = None
    cft_peak: float = 0.0
    channels: list[str] = field(default_factory=list)
    closed_by: str | None = None
    coincidence_sum: float = 0.0

    @property
    def duration(self) -> float | None:
        """trigger_off - trigger_on (s); None while on."""
        return None if self.trigger_off is None else float(self.trigger_off - self.trigger_on)


@dataclass(frozen=True)
class Transition:
    """What :meth:`StreamingTrigger.feed` reports: ``kind`` "on" (an event started: the
    early alert), "off" (it ended) or "cancel" (it ended shorter than ``min_duration_s``:
    drop it); ``event`` is a snapshot of the event at that moment."""

    kind: str
    event: TriggerEvent

    @property
    def time(self) -> UTCDateTime:
        """trigger_on for "on", trigger_off otherwise."""
        if self.kind == "on" or self.event.trigger_off is None:
            return self.event.trigger_on
        return self.event.trigger_off


def _utc(ns: int) -> UTCDateTime:
    return UTCDateTime(ns=int(ns))


class _Trig:
    """One channel-level trigger (on .. off)."""

    __slots__ = ("seed_id", "on_ns", "peak", "spent")

    def __init__(self, seed_id: str, on_ns: int, peak: float) -> None:
        self.seed_id = seed_id
        self.on_ns = on_ns
        self.peak = peak
        self.spent = False


_ON, _OFF = 0, 1  # ranks: at equal times an on sorts before an off (they overlap)


class _Channel:
    """One channel: segment bookkeeping, the cft stream and the on/off state machine.

    Sample ``i`` of the current segment is at ``seg_ns + round(i * dt_ns)``."""

    __slots__ = ("seed_id", "weight", "fs", "dt_ns", "half_ns", "cft", "nwarm", "nhold",
                 "max_len", "on_thr", "off_thr", "seg_ns", "next_ns", "on", "on_idx",
                 "last_above", "need_rise", "rise_from", "rise_level", "trig", "pending", "seq")

    def __init__(self, seed_id: str, cfg: TriggerConfig, fs: float, start_ns: int,
                 seq: itertools.count) -> None:
        if not (fs > 0 and math.isfinite(fs)):
            raise ValueError(f"{seed_id}: sampling_rate must be > 0, got {fs!r}")
        nsta, nlta = int(cfg.sta_s * fs), int(cfg.lta_s * fs)  # as Trace.trigger
        if nsta < 1 or nlta <= nsta:
            raise ValueError(f"{seed_id}: sta_s = {cfg.sta_s:g} s and lta_s = {cfg.lta_s:g} s "
                             f"give nsta = {nsta}, nlta = {nlta} samples at {fs:g} Hz; need "
                             "1 <= nsta < nlta")
        self.seed_id = seed_id
        self.weight = cfg.weight(seed_id)
        self.fs = fs
        self.dt_ns = 1e9 / fs
        self.half_ns = 0.5e9 / fs
        self.cft = StaLtaStream(cfg.method, nsta, nlta,
                                bandpass_sos(cfg.freqmin, cfg.freqmax, fs, cfg.corners))
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
        self.trig: _Trig | None = None

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
        self.trig = _Trig(self.seed_id, t, value)
        self.pending.append((t, _ON, next(self.seq), self, self.trig, "on"))

    def _off(self, idx: int, reason: str) -> None:
        self.on = False
        self.pending.append((self.t_ns(idx), _OFF, next(self.seq), self, self.trig, reason))
        self.trig = None


class _Event:
    __slots__ = ("on_ns", "deadline", "last_off", "trigs", "channels", "weights")

    def __init__(self, on_ns: int, deadline: int) -> None:
        self.on_ns = on_ns
        self.deadline = deadline
        self.last_off = on_ns  # latest off among its channels' triggers (ns)
        self.trigs: list[_Trig] = []
        self.channels: list[str] = []
        self.weights: dict[str, float] = {}

    def join(self, ch: _Channel, trig: _Trig) -> None:
        self.trigs.append(trig)
        if ch.seed_id not in self.weights:
            self.channels.append(ch.seed_id)
            self.weights[ch.seed_id] = ch.weight

    def peak(self) -> float:
        return max((t.peak for t in self.trigs), default=0.0)


class StreamingTrigger:
    """Coincidence STA/LTA trigger over any number of channels, fed chunk by chunk.

    Args:
        cfg: :class:`TriggerConfig` (validated here).
        max_lag_s: a channel whose data is more than this far behind the most advanced
            channel (s) is not waited for in coincidence decisions (a dead channel must not
            hold up the alert).

    Attributes:
        current_peak: highest STA/LTA ratio of the event now on (None when none is on).
    """

    def __init__(self, cfg: TriggerConfig | None = None, *, max_lag_s: float = 10.0) -> None:
        cfg = TriggerConfig() if cfg is None else cfg
        cfg.validate()
        self.cfg = cfg
        self.max_lag_ns = int(min(max_lag_s * 1e9, 2.0 ** 62))
        self._channels: dict[str, _Channel] = {}
        self._seq = itertools.count()
        self._npending = 0
        self._on_set: dict[str, _Trig] = {}
        self._event: _Event | None = None
        self._dead_until = -(2 ** 62)
        self._min_ns = int(round(cfg.min_duration_s * 1e9))
        self._max_ns = int(round(cfg.max_duration_s * 1e9))
        self._dead_ns = int(round(cfg.dead_time_s * 1e9))
        self._need = float(cfg.coincidence_sum) - 1e-9

    # ------------------------------------------------------------------ input
    def feed(self, seed_id: str, data: np.ndarray, starttime: UTCDateTime,
             sampling_rate: float) -> list[Transition]:
        """Take the next chunk of one channel and return the event transitions it settles,
        in time order (usually none).

        Args:
            seed_id: the channel, ``NET.STA.LOC.CHA`` (its weight: see ``weights``).
            data: the samples (counts; any numeric dtype), 1-D.
            starttime: time of the first sample (UTC).
            sampling_rate: samples per second (Hz); a change starts a new segment.

        A chunk that does not start within half a sample of the end of the channel's
        previous one starts a new segment (gap); one that repeats samples already seen on
        the same grid is trimmed to the new ones.
        """
        data = np.asarray(data)
        if data.ndim != 1:
            raise ValueError(f"{seed_id}: data must be 1-D, got shape {data.shape}")
        m = data.shape[0]
        start_ns = starttime.ns if isinstance(starttime, UTCDateTime) else UTCDateTime(starttime).ns
        ch = self._channels.get(seed_id)
        if ch is None or ch.fs != sampling_rate:
            if ch is not None:  # a new sampling rate: a new segment with a new filter
                self._npending += ch.end("gap")
                pending = ch.pending
            if m == 0:
                return []
            new = _Channel(seed_id, self.cfg, float(sampling_rate), start_ns, self._seq)
            if ch is not None:
                new.pending = pending
            self._channels[seed_id] = ch = new
        elif m == 0:
            return []
        else:
            d = start_ns - ch.next_ns
            if d > ch.half_ns or d < -ch.half_ns:
                if d < 0 and ch.cft.n:  # overlap: drop samples already seen if on the grid
                    k = int(round(-d / ch.dt_ns))
                    if abs(-d - k * ch.dt_ns) <= ch.half_ns:
                        if k >= m:
                            return []
                        data = data[k:]
                        d = 0
                if d:
                    self._npending += ch.end("gap")
                    ch.reset(start_ns)
        self._npending += ch.process(data)
        if not self._npending and self._event is None:
            return []
        return self._settle()

    def flush(self) -> list[Transition]:
        """End of the data: channels still on go off at their last sample, every pending
        decision is made, an event still on ends ("end of data"); every channel starts a
        new segment with its next chunk."""
        for ch in self._channels.values():
            self._npending += ch.end("end of data")
        out = self._settle(final=True)
        for ch in self._channels.values():
            ch.reset(ch.next_ns)
        return out

    @property
    def current_peak(self) -> float | None:
        """Highest STA/LTA ratio of the event now on; None when no event is on."""
        ev = self._event
        return None if ev is None else ev.peak()

    @property
    def event_on(self) -> bool:
        """Whether an event is on."""
        return self._event is not None

    # ------------------------------------------------------------------ coincidence
    def _watermark(self) -> int:
        ks = [ch.known_ns() for ch in self._channels.values()]
        newest = max(ks)
        return min(k for k in ks if k >= newest - self.max_lag_ns)

    def _settle(self, final: bool = False) -> list[Transition]:
        w = 2 ** 62 if final else self._watermark()
        ready = []
        if self._npending:
            for ch in self._channels.values():
                q = ch.pending
                while q and q[0][0] < w:
                    ready.append(q.popleft())
            self._npending -= len(ready)
            if len(ready) > 1:
                ready.sort(key=lambda r: (r[0], r[1], r[2]))
        out: list[Transition] = []
        for t, rank, _, ch, trig, reason in ready:
            ev = self._event
            if ev is not None and t > ev.deadline:
                self._close_max(out)
            if rank == _ON:
                self._chan_on(t, ch, trig, out)
            else:
                self._chan_off(t, ch, trig, reason, out)
        ev = self._event
        if ev is not None and ev.deadline < w and not final:
            self._close_max(out)
        return out

    def _chan_on(self, t: int, ch: _Channel, trig: _Trig, out: list[Transition]) -> None:
        if t < self._dead_until or ch.weight <= 0:
            trig.spent = True
            return
        self._on_set[ch.seed_id] = trig
        ev = self._event
        if ev is not None:
            ev.join(ch, trig)
            return
        total = sum(self._channels[s].weight for s in self._on_set)
        if total >= self._need:
            members = sorted(self._on_set.values(), key=lambda tr: tr.on_ns)
            on_ns = members[0].on_ns
            ev = _Event(on_ns, on_ns + self._max_ns)
            for tr in members:
                ev.join(self._channels[tr.seed_id], tr)
            self._event = ev
            out.append(Transition("on", self._snapshot(ev)))

    def _chan_off(self, t: int, ch: _Channel, trig: _Trig, reason: str,
                  out: list[Transition]) -> None:
        if self._on_set.get(ch.seed_id) is not trig:
            return  # a trigger that does not count (dead time, weight 0, spent)
        del self._on_set[ch.seed_id]
        ev = self._event
        if ev is not None:
            if t >= ev.last_off:
                ev.last_off = t
            if not self._on_set:
                # the union of its channels' triggers (an off may come late, after a gap of
                # a channel that was not waited for)
                self._close(ev, ev.last_off, reason, out)

    def _close_max(self, out: list[Transition]) -> None:
        ev = self._event
        for trig in self._on_set.values():
            trig.spent = True
        self._on_set.clear()
        self._close(ev, ev.deadline, "max_duration", out)

    def _close(self, ev: _Event, t: int, reason: str, out: list[Transition]) -> None:
        self._event = None
        kind = "cancel" if t - ev.on_ns < self._min_ns else "off"
        if kind == "off":
            self._dead_until = t + self._dead_ns
        out.append(Transition(kind, self._snapshot(ev, t, reason)))

    @staticmethod
    def _snapshot(ev: _Event, off_ns: int | None = None, reason: str | None = None) -> TriggerEvent:
        return TriggerEvent(trigger_on=_utc(ev.on_ns),
                            trigger_off=None if off_ns is None else _utc(off_ns),
                            cft_peak=ev.peak(), channels=list(ev.channels), closed_by=reason,
                            coincidence_sum=float(sum(ev.weights.values())))
