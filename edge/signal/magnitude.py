"""Local magnitude ML: Wood-Anderson simulation and the Hutton & Boore (1987) scale.

The station computes ML with exactly these functions, and the synthetic benchmark
(``trainer.synth``) scales its earthquakes with them, so a label ``magnitude = 2.1`` means
"this function returns 2.1 on the noise-free ground velocity of the event".

Procedure (one station, one event):

1. ground **velocity** in m/s of each horizontal component (N/E or 1/2), e.g. from
   ``Stream.remove_response(inventory, output="VEL")`` — :func:`station_magnitude` does this;
2. zero-phase 4-pole Butterworth **high-pass** at :data:`ML_HIGHPASS_HZ` (1 Hz): it removes
   microseism and the low-frequency noise that response removal amplifies below a geophone's
   natural frequency; a Wood-Anderson peak of an M <= 4 local event lies well above 1 Hz, so
   the high-pass changes it by well under 0.05 magnitude units;
3. **Wood-Anderson** simulation (natural period 0.8 s, damping 0.8, static magnification 2080,
   the value Hutton & Boore 1987 assumed) with ObsPy's
   :func:`~obspy.signal.invsim.simulate_seismometer` (ported to numpy in
   :mod:`edge.signal.seismometer`, the same values): velocity in, WA displacement out;
4. **A** = largest absolute WA amplitude (zero to peak) in mm;
5. ``ML = log10(A) + 1.110 log10(r/100) + 0.00189 (r - 100) + 3.0`` with ``r`` the
   hypocentral distance in km (Hutton & Boore 1987; calibrated for 10-700 km, used here
   down to 2 km as an extrapolation);
6. the station magnitude is the **mean of the two horizontal-component magnitudes**
   (Hutton & Boore treated each horizontal WA record as a separate reading).

Without a catalogue location, :func:`hypocentral_distance_km` estimates ``r`` from the S-P
time. Only numpy and obspy's core: this module runs on the station (the high-pass and the
simulation without the package inits of ``scipy.signal`` and ``obspy.signal``, ~110 MB;
:func:`station_magnitude`'s ``remove_response`` still loads ``obspy.signal``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from edge.signal.iir import butter_sos, sosfiltfilt
from edge.signal.seismometer import simulate_seismometer

__all__ = [
    "ML_HIGHPASS_HZ",
    "VP_KM_S",
    "VS_KM_S",
    "WA_DAMPING",
    "WA_MAGNIFICATION",
    "WA_PERIOD_S",
    "WOOD_ANDERSON_PAZ",
    "hypocentral_distance_km",
    "local_magnitude",
    "ml_hutton_boore",
    "s_minus_p_s",
    "station_magnitude",
    "wood_anderson_displacement",
    "wood_anderson_peak_mm",
]

#: Wood-Anderson natural period (s), damping (fraction of critical) and static magnification.
WA_PERIOD_S = 0.8
WA_DAMPING = 0.8
WA_MAGNIFICATION = 2080.0

#: High-pass corner (Hz) applied to the velocity before the Wood-Anderson simulation.
ML_HIGHPASS_HZ = 1.0

#: Crustal P and S velocities (km/s) used for S-P distances.
VP_KM_S = 6.0
VS_KM_S = 3.5


def _wood_anderson_paz() -> dict[str, Any]:
    w0 = 2.0 * math.pi / WA_PERIOD_S
    re = -WA_DAMPING * w0
    im = w0 * math.sqrt(1.0 - WA_DAMPING**2)
    # Velocity in -> displacement out: H(s) = 2080 * s / (s^2 + 2 h w0 s + w0^2).
    return {
        "poles": [complex(re, im), complex(re, -im)],
        "zeros": [0j],
        "gain": 1.0,
        "sensitivity": WA_MAGNIFICATION,
    }


#: Poles and zeros of the Wood-Anderson seismometer for **velocity** input (one zero at the
#: origin) and displacement output, in ObsPy's ``paz`` dict form (``gain`` = A0 = 1,
#: ``sensitivity`` = 2080). Equal to ObsPy's ``invsim.WOODANDERSON`` to 4 decimals.
WOOD_ANDERSON_PAZ: dict[str, Any] = _wood_anderson_paz()


def _as_array_and_rate(data: Any, sampling_rate: float | None) -> tuple[np.ndarray, float]:
    stats = getattr(data, "stats", None)
    if stats is not None:  # an obspy Trace
        rate = float(stats.sampling_rate) if sampling_rate is None else float(sampling_rate)
        arr = np.asarray(data.data, dtype=np.float64)
    else:
        if sampling_rate is None:
            raise ValueError("sampling_rate is required for a plain array")
        rate = float(sampling_rate)
        arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected one trace (1-D array), got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError("trace has fewer than 2 samples")
    if not np.all(np.isfinite(arr)):
        raise ValueError("trace contains NaN or inf")
    if rate <= 0:
        raise ValueError(f"sampling_rate must be > 0, got {rate}")
    return arr, rate


def wood_anderson_displacement(
    velocity: Any,
    sampling_rate: float | None = None,
    highpass_hz: float | None = ML_HIGHPASS_HZ,
) -> np.ndarray:
    """Wood-Anderson record (metres of trace displacement) of a ground-velocity trace.

    ``velocity``: 1-D array in m/s, or an ObsPy ``Trace`` in m/s (its rate is used when
    ``sampling_rate`` is None). The mean is removed and ObsPy applies a 5 % cosine taper at
    both ends, so keep a few seconds of pre-event data in front of the event.
    ``highpass_hz``: zero-phase 4-pole Butterworth high-pass before the simulation
    (``None`` to skip it).
    """
    x, fs = _as_array_and_rate(velocity, sampling_rate)
    x = x - x.mean()
    if highpass_hz:
        if not 0 < highpass_hz < fs / 2:
            raise ValueError(f"highpass_hz must lie in (0, {fs / 2}), got {highpass_hz}")
        sos = butter_sos(4, highpass_hz / (fs / 2), "highpass")  # cached: scipy's butter
        padlen = min(x.size - 1, int(3 * fs / highpass_hz))
        x = sosfiltfilt(sos, x, padlen=padlen)  # scipy's sosfiltfilt, numpy only
    return simulate_seismometer(x, fs, WOOD_ANDERSON_PAZ, simulate_sensitivity=True,
                                zero_mean=True, taper=True, taper_fraction=0.05)


def wood_anderson_peak_mm(
    velocity: Any,
    sampling_rate: float | None = None,
    highpass_hz: float | None = ML_HIGHPASS_HZ,
) -> float:
    """Peak (zero-to-peak) Wood-Anderson amplitude in **mm** of a ground-velocity trace (m/s)."""
    wa = wood_anderson_displacement(velocity, sampling_rate, highpass_hz)
    return float(np.max(np.abs(wa)) * 1000.0)


def ml_hutton_boore(peak_mm: Any, r_km: Any) -> Any:
    """Hutton & Boore (1987) local magnitude from a WA amplitude (mm) at hypocentral ``r_km``.

    ``ML = log10(A) + 1.110 log10(r/100) + 0.00189 (r - 100) + 3.0``. Works on scalars and
    numpy arrays; ``A <= 0`` gives ``-inf``.
    """
    a = np.asarray(peak_mm, dtype=np.float64)
    r = np.asarray(r_km, dtype=np.float64)
    if np.any(r <= 0):
        raise ValueError("r_km must be > 0")
    with np.errstate(divide="ignore"):
        ml = np.log10(a) + 1.110 * np.log10(r / 100.0) + 0.00189 * (r - 100.0) + 3.0
    return float(ml) if ml.ndim == 0 else ml


def local_magnitude(
    horizontals: Iterable[Any],
    sampling_rate: float | None,
    r_km: float,
    highpass_hz: float | None = ML_HIGHPASS_HZ,
) -> float:
    """ML of one station: mean of the per-component ML of its horizontal velocity traces (m/s)."""
    mags = [
        ml_hutton_boore(wood_anderson_peak_mm(h, sampling_rate, highpass_hz), r_km)
        for h in horizontals
    ]
    if not mags:
        raise ValueError("no horizontal component given")
    return float(np.mean(mags))


def s_minus_p_s(r_km: float, vp: float = VP_KM_S, vs: float = VS_KM_S) -> float:
    """S-P time (s) at hypocentral distance ``r_km`` for straight rays in a uniform medium."""
    return float(r_km) * (1.0 / vs - 1.0 / vp)


def hypocentral_distance_km(sp_s: float, vp: float = VP_KM_S, vs: float = VS_KM_S) -> float:
    """Hypocentral distance (km) from an S-P time (s): ``r = (ts - tp) / (1/vs - 1/vp)``."""
    if vs >= vp:
        raise ValueError("vs must be smaller than vp")
    return float(sp_s) / (1.0 / vs - 1.0 / vp)


_HORIZONTAL_CODES: Sequence[tuple[str, str]] = (("N", "E"), ("1", "2"))


def station_magnitude(
    stream: Any,
    inventory: Any,
    r_km: float,
    *,
    pre_filt: Sequence[float] | None = None,
    water_level: float | None = 60.0,
    highpass_hz: float | None = ML_HIGHPASS_HZ,
) -> float:
    """ML of one station's record in raw counts, using the responses in ``inventory``.

    ``stream`` (ObsPy ``Stream``, not modified) must hold the horizontals as ``??N``/``??E``
    or ``??1``/``??2`` channels. The response is removed to ground velocity
    (``remove_response(output="VEL")``; ``pre_filt`` defaults to a cosine taper
    0.2-0.5 Hz / 0.45-0.49 x the sampling rate), then :func:`local_magnitude`.
    """
    st = stream.copy()
    for tr in st:
        tr.data = tr.data.astype(np.float64)
    st.merge(method=1, fill_value="interpolate")
    horiz = None
    for a, b in _HORIZONTAL_CODES:
        sel = [tr for tr in st if tr.stats.channel[-1:].upper() in (a, b)]
        if sel:
            horiz = sel
            break
    if not horiz:
        raise ValueError("no horizontal component (N/E or 1/2) in the stream")
    out = []
    for tr in horiz:
        fs = float(tr.stats.sampling_rate)
        pf = tuple(pre_filt) if pre_filt is not None else (0.2, 0.5, 0.45 * fs, 0.49 * fs)
        tr.detrend("linear")
        tr.remove_response(inventory=inventory, output="VEL", pre_filt=pf,
                           water_level=water_level, zero_mean=True, taper=True,
                           taper_fraction=0.05)
        out.append(tr)
    return local_magnitude(out, None, r_km, highpass_hz)
