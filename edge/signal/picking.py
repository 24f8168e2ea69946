"""Find the trigger-on time of an event file that comes without one (offline, whole file).

Used by the dataset reader when ``labels.csv`` leaves ``trigger_time`` empty. Bossea
defaults: recursive STA/LTA (ObsPy ``recursive_sta_lta``) with STA 0.2 s and LTA 10 s on
the Z component, bandpassed 1-100 Hz (Butterworth, 4 corners, zero phase; a highpass at
``freqmin`` when 100 Hz is not below 0.9 x Nyquist), after the mean and linear trend are
removed and 5 % of each end tapered. Gaps are zero-filled (after the mean is removed).

Pick, trying LTA lengths in turn (``lta_s``, then ``0.5 * lta_s`` and ``0.2 * lta_s`` but
never below 10 STA windows, i.e. 10 s, 5 s, 2 s by default); an LTA is only tried when the
file holds ``nlta + 2 * nsta`` samples:

* ``"threshold"`` (full LTA) or ``"threshold-short-lta"``: the first sample after the LTA
  has filled (index >= nlta) where the STA/LTA reaches ``thr_on`` (5.0). Shorter LTAs catch
  an onset that lies less than ``lta_s`` after the file start (the LTA has not filled yet),
  as in ObsPy's example ``obspy.read()`` (onset 5 s into the file).
* ``"peak"`` (fallback): when no LTA reaches ``thr_on``, or the file is shorter than needed
  for the shortest LTA (then the LTA is half the file): the sample of the largest STA/LTA
  after the LTA window of the last LTA tried. Such a pick lies a little after the onset
  (the STA has to fill); the window's 2 s pre-trigger absorbs that.

A file shorter than ``4 * nsta`` samples (0.8 s) raises :class:`TriggerPickError`.

Also here: :func:`aic_onset`, the Akaike-information-criterion onset picker (Maeda 1985)
the station uses to pick P and S for its local magnitude (:mod:`edge.station.event_magnitude`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from obspy import Stream, UTCDateTime
from obspy.signal.filter import bandpass, highpass
from obspy.signal.trigger import recursive_sta_lta

from edge.signal.preprocess import PreprocessError, component_of

__all__ = ["TriggerPick", "TriggerPickConfig", "TriggerPickError", "find_trigger", "pick_trigger"]

#: Shorter LTAs tried, as fractions of ``lta_s``, when the full LTA never triggers.
LTA_FALLBACK_FACTORS = (0.5, 0.2)
#: The shortest LTA tried, in STA windows.
MIN_LTA_STA_RATIO = 10


class TriggerPickError(PreprocessError):
    """No trigger can be found in the file (no Z, too short, flat)."""


@dataclass(frozen=True)
class TriggerPickConfig:
    """STA/LTA settings for offline picking.

    Attributes:
        sta_s: short-term average window, seconds.
        lta_s: long-term average window, seconds.
        thr_on: trigger-on threshold of STA/LTA (dimensionless).
        freqmin: bandpass lower corner, Hz.
        freqmax: bandpass upper corner, Hz.
        corners: Butterworth corners.
    """

    sta_s: float = 0.2
    lta_s: float = 10.0
    thr_on: float = 5.0
    freqmin: float = 1.0
    freqmax: float = 100.0
    corners: int = 4


@dataclass(frozen=True)
class TriggerPick:
    """Result of :func:`pick_trigger`.

    Attributes:
        time: trigger-on time (UTC).
        method: ``"threshold"`` or ``"peak"`` (fallback, see module docstring).
        ratio: STA/LTA value at the pick.
        seed_id: the Z trace used.
        lta_s: the LTA length that produced the pick, seconds.
    """

    time: UTCDateTime
    method: str
    ratio: float
    seed_id: str
    lta_s: float


def _z_trace(st: Stream):
    z = Stream([tr for tr in st if component_of(tr.stats.channel) == "Z" and tr.stats.npts > 0])
    if not z:
        raise TriggerPickError("no Z component with samples to pick a trigger on")
    ids = sorted({tr.id for tr in z})
    if len(ids) > 1:
        raise TriggerPickError(f"several Z channels ({', '.join(ids)}); select one station first")
    z = z.copy()
    for tr in z:
        tr.data = np.asarray(tr.data, dtype=np.float64)
    if len(z) > 1:
        mean = float(np.mean(np.concatenate([np.ma.compressed(np.ma.asarray(tr.data)) for tr in z])))
        for tr in z:
            tr.data = tr.data - mean
        try:
            z.merge(method=1, fill_value=0)
        except Exception as exc:  # e.g. differing sampling rates
            raise TriggerPickError(f"cannot merge {ids[0]}: {exc}") from None
    return z[0]


def pick_trigger(st: Stream, config: TriggerPickConfig | None = None) -> TriggerPick:
    """Pick the trigger-on time on the Z component of ``st`` (one station).

    Raises:
        TriggerPickError: no Z, several Z channels, a file shorter than 4 STA windows, a
            flat trace, or NaN/inf in the data.
    """
    cfg = config or TriggerPickConfig()
    tr = _z_trace(st)
    fs = float(tr.stats.sampling_rate)
    x = np.asarray(tr.data, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise TriggerPickError(f"{tr.id}: data contain NaN or inf")
    nsta = max(1, int(round(cfg.sta_s * fs)))
    if x.size < 4 * nsta:
        raise TriggerPickError(
            f"{tr.id}: {x.size / fs:.2f} s of data is too short to pick a trigger "
            f"(needs at least {4 * cfg.sta_s:g} s)"
        )
    if np.all(x == x[0]):
        raise TriggerPickError(f"{tr.id}: constant trace, nothing to trigger on")
    tr = tr.copy()
    tr.detrend("linear")
    tr.taper(max_percentage=0.05, type="hann")
    if cfg.freqmax < 0.45 * fs:
        y = bandpass(tr.data, cfg.freqmin, cfg.freqmax, df=fs, corners=cfg.corners, zerophase=True)
    else:
        y = highpass(tr.data, cfg.freqmin, df=fs, corners=cfg.corners, zerophase=True)

    last = None
    for lta_s in _lta_cascade(cfg):
        nlta = max(2 * nsta, int(round(lta_s * fs)))
        if x.size < nlta + 2 * nsta:
            continue
        cft = recursive_sta_lta(y, nsta, nlta)
        hits = np.flatnonzero(cft[nlta:] >= cfg.thr_on)
        if hits.size:
            i = nlta + int(hits[0])
            method = "threshold" if lta_s == cfg.lta_s else "threshold-short-lta"
            return TriggerPick(tr.stats.starttime + i / fs, method, float(cft[i]), tr.id, nlta / fs)
        last = (cft, nlta)
    if last is None:  # shorter than the shortest LTA: LTA = half the file
        nlta = max(2 * nsta, x.size // 2)
        last = (recursive_sta_lta(y, nsta, nlta), nlta)
    cft, nlta = last
    i = nlta + int(np.argmax(cft[nlta:]))
    return TriggerPick(tr.stats.starttime + i / fs, "peak", float(cft[i]), tr.id, nlta / fs)


def _lta_cascade(cfg: TriggerPickConfig) -> list[float]:
    """LTA lengths tried in turn, seconds: the configured one, then shorter ones down to
    ``MIN_LTA_STA_RATIO`` STA windows."""
    floor = MIN_LTA_STA_RATIO * cfg.sta_s
    out = [cfg.lta_s]
    for factor in LTA_FALLBACK_FACTORS:
        candidate = max(floor, cfg.lta_s * factor)
        if candidate < out[-1]:
            out.append(candidate)
    return out


def find_trigger(st: Stream) -> UTCDateTime:
    """Trigger-on time of ``st`` with the default :class:`TriggerPickConfig` (see
    :func:`pick_trigger`); the callable the dataset reader uses by default."""
    return pick_trigger(st).time
