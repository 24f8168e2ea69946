"""Parameters of the synthetic benchmark (:class:`SynthConfig`) and the class balance."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "BALANCES",
    "BOSSEA_COUNTS",
    "CLASSES",
    "SynthConfig",
    "class_counts",
]

#: Class names, in the order used everywhere (labels.csv, synth.json).
CLASSES: tuple[str, ...] = ("fracture", "rockfall", "earthquake", "noise")

#: Event counts per class of the single-station Bossea cave catalogue the default balance
#: imitates (fracture 257, rockfall 21, earthquake 36, noise 41).
BOSSEA_COUNTS: dict[str, int] = {"fracture": 257, "rockfall": 21, "earthquake": 36, "noise": 41}

#: Named balances -> relative class weights.
BALANCES: dict[str, dict[str, float]] = {
    "bossea": {k: float(v) for k, v in BOSSEA_COUNTS.items()},
    "equal": {k: 1.0 for k in CLASSES},
}


def class_counts(n_events: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``n_events`` over the classes in proportion to ``weights`` (largest remainder).

    With ``n_events >= number of classes with weight > 0``, every such class gets at least one
    event (taken from the largest class), so small benchmarks still contain every class.
    """
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    classes = [c for c in CLASSES if weights.get(c, 0.0) > 0]
    unknown = set(weights) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown classes in balance: {sorted(unknown)}")
    if not classes:
        raise ValueError("balance gives every class weight 0")
    total = sum(weights[c] for c in classes)
    exact = {c: n_events * weights[c] / total for c in classes}
    counts = {c: int(math.floor(exact[c])) for c in classes}
    rest = n_events - sum(counts.values())
    # Largest remainder; ties broken by class order (deterministic).
    order = sorted(classes, key=lambda c: (-(exact[c] - counts[c]), CLASSES.index(c)))
    for c in order[:rest]:
        counts[c] += 1
    if n_events >= len(classes):
        for c in classes:
            if counts[c] == 0:
                donor = max(classes, key=lambda k: (counts[k], -CLASSES.index(k)))
                counts[donor] -= 1
                counts[c] += 1
    return {c: counts.get(c, 0) for c in CLASSES}


def _pair(name: str, v: Any, lo: float | None = None) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers, got {v!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a > b:
        raise ValueError(f"{name} must be finite with min <= max, got {v!r}")
    if lo is not None and a < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v!r}")
    return (a, b)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic benchmark; same config -> same bytes.

    Ranges are ``(min, max)`` and drawn uniformly unless the docstring of the field says
    otherwise (log-uniform draws are marked). See ``docs/synthetic.md`` for the physics.
    """

    # --- dataset --------------------------------------------------------------------------
    n_events: int = 400
    seed: int = 0
    #: "bossea" (257:21:36:41), "equal", or a mapping class -> relative weight.
    balance: Any = "bossea"
    sampling_rate: float = 250.0
    #: Number of stations S1..Sn (same geophone, different pre-amplifier gains).
    n_stations: int = 3
    network: str = "XX"
    #: Time of the first record; event i starts near start_time + i * event_spacing_s.
    start_time: str = "2025-01-01T00:00:00Z"
    event_spacing_s: float = 3 * 3600.0
    #: Pre-event noise before the onset (s) and bounds on the record length (s).
    pre_event_s: tuple[float, float] = (12.0, 20.0)
    record_s: tuple[float, float] = (30.0, 80.0)

    # --- background noise and SNR ---------------------------------------------------------
    #: Target SNR (dB) of fractures, rockfalls and noise transients (rms of the signal over
    #: its 5-95 % energy window / rms of the background). For earthquakes the amplitude is
    #: fixed by ML and distance: the minimum acts as a detection threshold only.
    snr_db: tuple[float, float] = (6.0, 30.0)
    #: Background ground-velocity rms per component (m/s), log-uniform.
    noise_rms: tuple[float, float] = (1e-9, 1e-7)

    # --- fracture (class I) ---------------------------------------------------------------
    fracture_freq_hz: tuple[float, float] = (55.0, 110.0)
    #: e-folding decay time of the damped oscillations (s), log-uniform.
    fracture_decay_s: tuple[float, float] = (0.02, 0.25)
    #: Seasonal drift: added to every fracture peak frequency (Hz), e.g. -15 for a cold season.
    season_shift_hz: float = 0.0

    # --- rockfall (class II) --------------------------------------------------------------
    rockfall_duration_s: tuple[float, float] = (5.0, 60.0)
    rockfall_band_hz: tuple[float, float] = (10.0, 60.0)

    # --- earthquake (class III) -----------------------------------------------------------
    magnitude_range: tuple[float, float] = (0.0, 3.0)
    #: Gutenberg-Richter b-value for magnitudes (truncated exponential); None = uniform.
    magnitude_b_value: float | None = None
    #: Hypocentral distance (km); density proportional to r (epicentres uniform in area).
    distance_km: tuple[float, float] = (2.0, 80.0)
    vp_km_s: float = 6.0
    vs_km_s: float = 3.5
    #: Brune stress drop (MPa), log-uniform.
    stress_drop_mpa: tuple[float, float] = (1.0, 10.0)
    #: Q(f) = Q0 * f**eta for S (and P).
    q0: tuple[float, float] = (150.0, 400.0)
    q_eta: float = 0.6
    #: Site high-frequency decay kappa0 (s).
    kappa_s: tuple[float, float] = (0.01, 0.04)

    #: Free-form extras recorded in synth.json (not used by the generator).
    notes: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------------------------------
    def class_weights(self) -> dict[str, float]:
        if isinstance(self.balance, str):
            try:
                return dict(BALANCES[self.balance])
            except KeyError:
                raise ValueError(
                    f"balance must be one of {sorted(BALANCES)} or a mapping, got {self.balance!r}"
                ) from None
        return {str(k): float(v) for k, v in dict(self.balance).items()}

    def class_counts(self) -> dict[str, int]:
        return class_counts(self.n_events, self.class_weights())

    def validate(self) -> SynthConfig:
        """Raise ``ValueError`` with a readable message for an impossible configuration."""
        if int(self.n_events) != self.n_events or self.n_events < 1:
            raise ValueError(f"n_events must be an integer >= 1, got {self.n_events!r}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        w = self.class_weights()
        if any(v < 0 or not math.isfinite(v) for v in w.values()):
            raise ValueError("class weights must be finite and >= 0")
        class_counts(self.n_events, w)
        if not 200.0 <= self.sampling_rate <= 2000.0:
            raise ValueError(
                f"sampling_rate must be 200-2000 Hz (fractures reach 110 Hz), got {self.sampling_rate}"
            )
        if not 1 <= self.n_stations <= 99:
            raise ValueError("n_stations must be 1-99")
        if not (len(self.network) <= 2 and self.network.isalnum()):
            raise ValueError(f"network must be 1-2 letters/digits, got {self.network!r}")
        _pair("snr_db", self.snr_db)
        _pair("noise_rms", self.noise_rms, 1e-12)
        pre = _pair("pre_event_s", self.pre_event_s, 1.0)
        rec = _pair("record_s", self.record_s, 5.0)
        if rec[0] < pre[1] + 5.0:
            raise ValueError("record_s minimum must exceed pre_event_s maximum by >= 5 s")
        f = _pair("fracture_freq_hz", self.fracture_freq_hz, 1.0)
        if f[0] + self.season_shift_hz <= 2.0:
            raise ValueError("season_shift_hz pushes fracture frequencies below 2 Hz")
        _pair("fracture_decay_s", self.fracture_decay_s, 1e-3)
        d = _pair("rockfall_duration_s", self.rockfall_duration_s, 1.0)
        if d[1] + 2.0 + pre[0] + 1.0 > rec[1]:
            raise ValueError("rockfall_duration_s maximum + 2 s taper + pre_event_s minimum + 1 s "
                             "exceeds record_s maximum")
        b = _pair("rockfall_band_hz", self.rockfall_band_hz, 0.5)
        if b[1] >= 0.45 * self.sampling_rate:
            raise ValueError("rockfall_band_hz must stay below 0.45 x sampling_rate")
        _pair("magnitude_range", self.magnitude_range, -3.0)
        _pair("distance_km", self.distance_km, 0.1)
        if not 0 < self.vs_km_s < self.vp_km_s:
            raise ValueError("need 0 < vs_km_s < vp_km_s")
        _pair("stress_drop_mpa", self.stress_drop_mpa, 1e-3)
        _pair("q0", self.q0, 1.0)
        _pair("kappa_s", self.kappa_s, 0.0)
        if self.magnitude_b_value is not None and self.magnitude_b_value <= 0:
            raise ValueError("magnitude_b_value must be > 0 or None")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every parameter (tuples as lists)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["class_weights"] = self.class_weights()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthConfig:
        names = {f.name for f in fields(cls)}
        kw = {}
        for k, v in d.items():
            if k in names:
                kw[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)
