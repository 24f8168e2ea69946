"""The station's trigger bands: which frequency bands (Hz) the streaming trigger watches.

* ``[trigger] bands`` (or ``freqmin``/``freqmax``, one band) set in the configuration are used
  as they are; one whose high corner is at or above the digitizer's Nyquist frequency is an
  error naming the key (:class:`BandError`).
* Otherwise the bands come from the model bundle: its manifest's ``class_bands`` (the band
  each event class carries its energy in), or, for a bundle without it,
  :data:`FALLBACK_CLASS_BANDS` for the classes the bundle has. ``noise`` gets no band (it is
  not an event). Each band's high corner is clipped to :data:`NYQUIST_FRACTION` x the
  digitizer rate; a band left narrower than an octave by the clipping (e.g. fractures'
  20-120 Hz on a 50 Hz digitizer: 20-22.5 Hz, in the roll-off of the digitizer's
  anti-alias filter, where the STA/LTA ratio of the little energy left is noise) or entirely
  above it is dropped with a warning.

Why several bands: the default 1-20 Hz band suits local earthquakes, but rock fractures carry
their energy at tens to over a hundred Hz and a 1-20 Hz STA/LTA barely sees them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from edge.trigger.settings import DEFAULT_BAND, TriggerConfig

__all__ = ["FALLBACK_CLASS_BANDS", "NYQUIST_FRACTION", "BandError", "station_bands"]

#: highest usable trigger frequency as a fraction of the sampling rate (below Nyquist, where
#: the band-pass design is still a band-pass and the digitizer's anti-alias filter is flat)
NYQUIST_FRACTION = 0.45

#: class -> band (Hz) for bundles whose manifest has no ``class_bands``: local earthquakes
#: 1-20 Hz (the classic STA/LTA band), rockfalls 5-50 Hz (impacts; the synthetic generator's
#: 10-60 Hz with room below), rock fractures 20-120 Hz (tens to over a hundred Hz; the
#: generator's fractures peak at 55-110 Hz)
FALLBACK_CLASS_BANDS: dict[str, tuple[float, float]] = {
    "earthquake": (1.0, 20.0),
    "rockfall": (5.0, 50.0),
    "fracture": (20.0, 120.0),
}


#: a bundle band clipped to less than this ratio high/low (an octave) is dropped
MIN_OCTAVES = 2.0


class BandError(ValueError):
    """A configured band the digitizer cannot serve; the message names the key."""


def _fmt(b: tuple[float, float]) -> str:
    return f"{b[0]:g}-{b[1]:g} Hz"


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
        bands.append((float(lo), float(min(hi, top))))
    if not bands:  # every class above the digitizer's band: watch what it can record
        bands = [(min(DEFAULT_BAND[0], 0.1 * top), top)]
        warnings.append(f"no trigger band fits the {fs:g} Hz digitizer: using {_fmt(bands[0])}")
    return _distinct(bands), warnings


def _distinct(bands: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    return sorted({(float(lo), float(hi)) for lo, hi in bands})
