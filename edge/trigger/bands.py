"""The station's trigger bands: which frequency bands (Hz) the streaming trigger watches.

* ``[trigger] bands`` (or ``freqmin``/``freqmax``, one band) set in the configuration are used
  as they are; one whose high corner is at or above the digitizer's Nyquist frequency is an
  error naming the key (:class:`BandError`).
* Otherwise the bands come from the model bundle: its manifest's ``class_bands`` (the band
  each event class carries its energy in), or, for a bundle without it,
  :data:`FALLBACK_CLASS_BANDS` for the classes the bundle has. ``noise`` gets no band (it is
  not an event). Each band's high corner is clipped to :data:`NYQUIST_FRACTION` x the
  digitizer rate (a band with an infinite high corner follows the digitizer); a band left
  narrower than an octave by the clipping (e.g. fractures' 20 Hz and up on a 50 Hz
  digitizer: 20-22.5 Hz, in the roll-off of the digitizer's anti-alias filter, where the
  STA/LTA ratio of the little energy left is noise) or entirely above it is dropped with a
  warning. Each of these bands gets the STA window of :func:`band_sta_s`
  (:func:`station_trigger`).

Why several bands: a 2-20 Hz band suits local earthquakes, but rock fractures carry their
energy at tens to a few hundred Hz and a 2-20 Hz STA/LTA barely sees them.

Why the fracture band follows the digitizer: fractures carry their energy anywhere from
~20 Hz to 0.4 x the digitizer rate; with a fixed 20-120 Hz band, a fracture peaking at
110-140 Hz on a 500 Hz digitizer left half its energy above the band and was missed (on the
train split of ``bench/continuous.py``: fracture recall 0.50 at a 500 Hz site, 0.80 over
all sites; with 20 Hz - 0.45 x rate and the matched STA windows: 1.00 and 0.98).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from edge.trigger.settings import DEFAULT_BAND, TriggerConfig

__all__ = ["FALLBACK_CLASS_BANDS", "IMPULSIVE_CLASSES", "NYQUIST_FRACTION", "BandError", "band_sta_s", "station_bands",
           "station_trigger"]

#: highest usable trigger frequency as a fraction of the sampling rate (below Nyquist, where
#: the band-pass design is still a band-pass and the digitizer's anti-alias filter is flat)
NYQUIST_FRACTION = 0.45

#: class -> band (Hz) for bundles whose manifest has no ``class_bands``: local earthquakes
#: 2-20 Hz (the classic 1-20 Hz STA/LTA band without its lowest octave, where the noise of a
#: broadband sensor lives: with it, 0.6 s of STA would be needed to keep the ratio of noise
#: down), rockfalls 5-50 Hz (impacts; the synthetic generator's 5-80 Hz), rock fractures
#: from 20 Hz to the top of the digitizer's band (inf: clipped to 0.45 x the rate)
FALLBACK_CLASS_BANDS: dict[str, tuple[float, float]] = {
    "earthquake": (2.0, 20.0),
    "rockfall": (5.0, 50.0),
    "fracture": (20.0, math.inf),
}


#: a bundle band clipped to less than this ratio high/low (an octave) is dropped
MIN_OCTAVES = 2.0


#: classes whose band gets an STA window shorter than ``sta_s`` where :func:`band_sta_s`
#: allows it: rock fractures (tens of ms of energy). Quakes and rockfalls last seconds: a
#: 0.2 s STA loses nothing on them and a shorter one only adds noise triggers (on the train
#: split's 100 Hz site, 5-50 Hz with 0.12 s: 0.5 noise triggers an hour per component; 0.2 s:
#: none)
IMPULSIVE_CLASSES = ("fracture",)
#: the shortest STA window (s) :func:`band_sta_s` gives
MIN_STA_S = 0.05
#: STA >= this many periods of the band's low corner
STA_LOW_PERIODS = 0.6
#: STA x bandwidth >= this (the time-bandwidth product of the STA)
STA_BANDWIDTH_PRODUCT = 5.0


def band_sta_s(low: float, high: float) -> float:
    """The STA window (s) matched to a trigger band ``low``-``high`` Hz: ``max(0.05 s,
    0.6 / low, 5 / (high - low))``, rounded to the millisecond.

    Why: the STA must be short for impulsive events (a rock fracture's energy lasts tens of
    ms: a 0.2 s STA dilutes it four-fold), but on noise its ratio only stays near 1 when it
    averages enough independent noise: a time-bandwidth product of at least 5, and at least
    about half a period of the band's lowest frequency (on a broadband sensor the noise in
    1-20 Hz is mostly its 1-3 Hz part, which a 0.2 s STA cannot average: a 0.2 s STA
    triggered there about 30 times an hour per component). So 2-20 Hz: 0.3 s; 5-50 Hz:
    0.12 s (the station keeps 0.2 s, :data:`IMPULSIVE_CLASSES`); 20-225 Hz: 0.05 s; 20-45 Hz
    (a 100 Hz digitizer): 0.2 s.
    """
    sta = max(MIN_STA_S, STA_LOW_PERIODS / float(low), STA_BANDWIDTH_PRODUCT / (float(high) - float(low)))
    return round(sta, 3)


class BandError(ValueError):
    """A configured band the digitizer cannot serve; the message names the key."""


def _fmt(b: tuple[float, float]) -> str:
    return f"{b[0]:g}-{b[1]:g} Hz" if math.isfinite(b[1]) else f"{b[0]:g} Hz and up"


def station_bands(cfg: TriggerConfig, sampling_rate: float, classes: Iterable[str] = (),
                  class_bands: Mapping[str, tuple[float, float]] | None = None,
                  ) -> tuple[list[tuple[float, float]], list[str]]:
    """The trigger bands (Hz) for a digitizer at ``sampling_rate`` Hz, and warnings.

    Args:
        cfg: the ``[trigger]`` settings (``configured_bands()`` wins when set).
        sampling_rate: digitizer rate (Hz).
        classes: the model's classes (for the fallback table).
        class_bands: the manifest's ``class_bands`` (may be empty or None).

    Returns:
        ``(bands, warnings)``: distinct bands sorted by low corner; one line per dropped band.

    Raises:
        BandError: a configured band at or above Nyquist (names ``[trigger] bands[i]`` or
            ``freqmax``).
    """
    fs = float(sampling_rate)
    nyq = 0.5 * fs
    configured = cfg.configured_bands()
    if configured is not None:
        for i, (lo, hi) in enumerate(configured):
            key = f"bands[{i}]" if cfg.bands else "freqmax"
            if hi >= nyq:
                raise BandError(f"[trigger] {key}: {_fmt((lo, hi))} reaches the Nyquist frequency "
                                f"({nyq:g} Hz) of the {fs:g} Hz digitizer; keep the high corner "
                                f"below {NYQUIST_FRACTION * fs:g} Hz")
        return _distinct(configured), []
    named, warnings = _bundle_bands(sampling_rate, classes, class_bands)
    return _distinct((lo, hi) for _, lo, hi in named), warnings


def _bundle_bands(sampling_rate: float, classes: Iterable[str],
                  class_bands: Mapping[str, tuple[float, float]] | None,
                  ) -> tuple[list[tuple[str, float, float]], list[str]]:
    """The bundle's bands clipped to the digitizer as ``(class, low, high)``, and warnings."""
    fs = float(sampling_rate)
    table = dict(class_bands) if class_bands else {
        c: FALLBACK_CLASS_BANDS[c] for c in classes if c in FALLBACK_CLASS_BANDS}
    table.pop("noise", None)
    if not table:
        table = {"default": DEFAULT_BAND}
    top = NYQUIST_FRACTION * fs
    bands, warnings = [], []
    for name, (lo, hi) in table.items():
        if min(hi, top) < MIN_OCTAVES * lo:
            warnings.append(f"trigger band {_fmt((lo, hi))} ({name}) does not fit below {top:g} Hz "
                            f"(0.45 x the {fs:g} Hz digitizer rate): dropped")
            continue
        bands.append((name, float(lo), float(min(hi, top))))
    if not bands:  # every class above the digitizer's band: watch what it can record
        bands = [("default", min(DEFAULT_BAND[0], 0.1 * top), top)]
        warnings.append(f"no trigger band fits the {fs:g} Hz digitizer: using {_fmt(bands[0][1:])}")
    return bands, warnings


def station_trigger(cfg: TriggerConfig, sampling_rate: float, classes: Iterable[str] = (),
                    class_bands: Mapping[str, tuple[float, float]] | None = None,
                    ) -> tuple[TriggerConfig, list[str]]:
    """The ``[trigger]`` settings the station runs at ``sampling_rate`` Hz, and warnings: the
    configured bands as configured (each with its own STA window or ``sta_s``), else the
    bands of :func:`station_bands`, each with the STA window of :func:`band_sta_s` -- for
    the classes of :data:`IMPULSIVE_CLASSES`; the others' never shorter than ``sta_s``.

    Raises:
        BandError: as :func:`station_bands`.
    """
    bands, warnings = station_bands(cfg, sampling_rate, classes, class_bands)
    if cfg.bands:
        return cfg, warnings
    if cfg.configured_bands() is not None:  # freqmin/freqmax: one band, sta_s
        return cfg.with_bands(bands), warnings
    named, _ = _bundle_bands(sampling_rate, classes, class_bands)
    sta: dict[tuple[float, float], float] = {}
    for name, lo, hi in named:
        s = band_sta_s(lo, hi) if name in IMPULSIVE_CLASSES else max(float(cfg.sta_s), band_sta_s(lo, hi))
        sta[(lo, hi)] = min(s, sta.get((lo, hi), s))
    return cfg.with_bands([(lo, hi, sta[(lo, hi)]) for lo, hi in bands]), warnings


def _distinct(bands: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    return sorted({(float(lo), float(hi)) for lo, hi in bands})
