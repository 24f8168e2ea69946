"""Parameters of the synthetic benchmark (:class:`SynthConfig`, a msgspec Struct declared on
:mod:`edge.schema`: each parameter's type, default, bounds, meaning and ``microseis synth``
option written once) and the class balance."""
from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.schema import Invalid, num, show, validate

__all__ = [
    "BALANCES",
    "BOSSEA_COUNTS",
    "CLASSES",
    "SynthConfig",
    "class_counts",
    "parse_balance",
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


def parse_balance(text: str) -> str | dict[str, float]:
    """``bossea``, ``equal`` or ``CLASS=WEIGHT,...`` (the ``--balance`` option) -> the
    ``balance`` value; the class names are checked by :class:`SynthConfig`."""
    if text in BALANCES:
        return text
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(
                f"bad balance {text!r}: use bossea, equal or CLASS=WEIGHT,... with classes "
                f"{', '.join(CLASSES)}")
    return weights


def _range(lo: float | None = None, doc: str = "", **extra: Any) -> Any:
    """A ``(min, max)`` field type; ``lo`` bounds both ends (min <= max: checked by the Struct)."""
    end = Annotated[float, Meta(ge=lo)] if lo is not None else float
    return Annotated[tuple[end, end], Meta(description=doc, extra=extra)]


def _cli(option: str, metavar: Any = None, **more: Any) -> dict[str, Any]:
    return {"cli": option, **({"metavar": metavar} if metavar else {}), **more}


class SynthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything that determines a synthetic benchmark; same config -> same bytes.

    Ranges are ``(min, max)`` and drawn uniformly unless the field says log-uniform. See
    ``docs/synthetic.md`` for the physics. Constructing checks the relations between fields
    (``__post_init__``); :meth:`validate` also checks types and bounds.
    """

    # --- dataset --------------------------------------------------------------------------
    n_events: Annotated[int, Meta(ge=1, description="number of events",
                                  extra=_cli("--events", "N"))] = 400
    sites: Annotated[Literal["train", "other", "fixed"] | None, Meta(
        description="where the events are recorded: 'train' (what microseis synth uses unless "
                    "told): every --events-per-site events at a site drawn from the training "
                    "split of trainer.synth.sites (rate, instrument + StationXML, noise, bands); "
                    "'other': the held-out split (200 Hz, 10 Hz geophone, other noise slopes), "
                    "never for training; 'fixed': the single-site benchmark (--sampling-rate, "
                    "--stations, --noise-rms, --distance-km, --magnitude-range, --b-value, "
                    "--season-shift apply only there). Unset in a config (a synth.json written "
                    "before sites existed) = fixed",
        extra=_cli("--sites"))] = None
    events_per_site: Annotated[int, Meta(ge=1, description="events per drawn site (--sites train "
                                         "or other)", extra=_cli("--events-per-site", "N"))] = 25
    seed: Annotated[int, Meta(ge=0, description="random seed", extra=_cli("--seed", "S"))] = 0
    balance: Annotated[Literal["bossea", "equal"] | dict[str, Annotated[float, Meta(ge=0)]], Meta(
        description="class balance: 'bossea' (257:21:36:41, the Bossea cave catalogue), 'equal', or "
                    "relative weights such as 'earthquake=1' or 'fracture=2,earthquake=1'",
        extra=_cli("--balance", "BALANCE", parse=parse_balance))] = "bossea"
    sampling_rate: Annotated[float, Meta(ge=200.0, le=2000.0, description="sampling rate, Hz "
                                         "(fractures reach 110 Hz)",
                                         extra=_cli("--sampling-rate", "HZ"))] = 250.0
    n_stations: Annotated[int, Meta(ge=1, le=99, description="stations S1..SN (same geophone, "
                                    "different pre-amplifier gains)",
                                    extra=_cli("--stations", "N"))] = 3
    network: Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{1,2}$",
                                 description="network code (1-2 letters/digits)")] = "XX"
    start_time: Annotated[str, Meta(description="time of the first record; event i starts near "
                                    "start_time + i * event_spacing_s")] = "2025-01-01T00:00:00Z"
    event_spacing_s: Annotated[float, Meta(description="spacing of the records, s")] = 3 * 3600.0
    pre_event_s: _range(1.0, "pre-event noise before the onset, s") = (12.0, 20.0)
    record_s: _range(5.0, "record length, s") = (30.0, 80.0)

    # --- background noise and SNR ---------------------------------------------------------
    snr_db: _range(None, "SNR range in dB of fractures, rockfalls and noise transients (rms over the "
                         "5-95 % energy window / background rms); for earthquakes MIN is a "
                         "detection threshold (their amplitude follows from ML and distance)",
                   **_cli("--snr-db")) = (6.0, 30.0)
    noise_rms: _range(1e-12, "background ground-velocity rms per component, m/s, log-uniform",
                      **_cli("--noise-rms")) = (1e-9, 1e-7)

    # --- fracture (class I) ---------------------------------------------------------------
    fracture_freq_hz: _range(1.0, "fracture peak frequency, Hz") = (55.0, 110.0)
    fracture_decay_s: _range(1e-3, "e-folding decay time of the damped oscillations, s, "
                                   "log-uniform") = (0.02, 0.25)
    season_shift_hz: Annotated[float, Meta(description="seasonal drift added to every fracture peak "
                                           "frequency, Hz (e.g. -15 for a cold season)",
                                           extra=_cli("--season-shift", "HZ"))] = 0.0

    # --- rockfall (class II) --------------------------------------------------------------
    rockfall_duration_s: _range(1.0, "rockfall duration, s, log-uniform") = (5.0, 60.0)
    rockfall_band_hz: _range(0.5, "rockfall frequency band, Hz") = (10.0, 60.0)

    # --- earthquake (class III) -----------------------------------------------------------
    magnitude_range: _range(-3.0, "earthquake ML range", **_cli("--magnitude-range")) = (0.0, 3.0)
    magnitude_b_value: Annotated[Annotated[float, Meta(gt=0)] | None, Meta(
        description="draw magnitudes from a truncated Gutenberg-Richter law with this b-value; "
                    "unset = uniform", extra=_cli("--b-value", "B"))] = None
    distance_km: _range(0.1, "earthquake hypocentral distance, km; density proportional to r "
                             "(epicentres uniform in area)", **_cli("--distance-km")) = (2.0, 80.0)
    vp_km_s: Annotated[float, Meta(gt=0, description="P velocity, km/s")] = 6.0
    vs_km_s: Annotated[float, Meta(gt=0, description="S velocity, km/s (< vp_km_s)")] = 3.5
    stress_drop_mpa: _range(1e-3, "Brune stress drop, MPa, log-uniform") = (1.0, 10.0)
    q0: _range(1.0, "Q(f) = q0 * f**q_eta for S (and P)") = (150.0, 400.0)
    q_eta: Annotated[float, Meta(description="frequency exponent of Q(f)")] = 0.6
    kappa_s: _range(0.0, "site high-frequency decay kappa0, s") = (0.01, 0.04)

    notes: Annotated[dict[str, Any], Meta(description="free-form extras recorded in synth.json "
                                          "(not used by the generator)")] = {}

    # -------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        order = [(k, f"must be (min, max) with min <= max, got {show(list(getattr(self, k)))}")
                 for k, v in _ranges(self) if not v[0] <= v[1]]
        Invalid.check(order)  # the rules below compare ends of ranges
        pre, rec = self.pre_event_s, self.record_s
        weights = self.class_weights()
        unknown = sorted(set(weights) - set(CLASSES))
        Invalid.check([
            ("balance", f"unknown classes {unknown}: the classes are {', '.join(CLASSES)}") if unknown else None,
            ("balance", "gives every class weight 0") if not unknown and not any(
                weights.get(c, 0) > 0 for c in CLASSES) else None,
            ("record_s", f"minimum must exceed the pre_event_s maximum by >= 5 s, got {num(rec[0])}")
            if rec[0] < pre[1] + 5.0 else None,
            ("season_shift_hz", "pushes fracture frequencies below 2 Hz")
            if self.fracture_freq_hz[0] + self.season_shift_hz <= 2.0 else None,
            ("rockfall_duration_s", "maximum + 2 s taper + pre_event_s minimum + 1 s exceeds the "
             "record_s maximum") if self.rockfall_duration_s[1] + 2.0 + pre[0] + 1.0 > rec[1] else None,
            ("rockfall_band_hz", f"must stay below 0.45 x sampling_rate = {num(0.45 * self.sampling_rate)}")
            if self.rockfall_band_hz[1] >= 0.45 * self.sampling_rate else None,
            ("vs_km_s", f"must be < vp_km_s = {num(self.vp_km_s)}") if not self.vs_km_s < self.vp_km_s else None,
        ])

    @property
    def site_mode(self) -> str:
        """``fixed``, ``train`` or ``other`` (``sites`` unset = ``fixed``)."""
        return self.sites or "fixed"

    def class_weights(self) -> dict[str, float]:
        if isinstance(self.balance, str):
            try:
                return dict(BALANCES[self.balance])
            except KeyError:
                raise Invalid(("balance", f"must be one of {', '.join(map(show, BALANCES))} or a "
                               f"mapping class -> weight, got {show(self.balance)}")) from None
        return {str(k): float(v) for k, v in dict(self.balance).items()}

    def class_counts(self) -> dict[str, int]:
        return class_counts(self.n_events, self.class_weights())

    def validate(self) -> SynthConfig:
        """Check types and bounds too (construction checks only the relations); returns
        ``self``, raises :class:`edge.schema.ConfigError` (a ``ValueError``) naming the field."""
        return validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every parameter (ranges as lists) plus ``class_weights``."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in msgspec.to_builtins(self).items()}
        d["class_weights"] = self.class_weights()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthConfig:
        """From :meth:`to_dict` (keys that are not parameters, e.g. ``class_weights``, are
        ignored); checked as :meth:`validate`."""
        names = {f.name for f in msgspec.structs.fields(cls)}
        return msgspec.convert({k: v for k, v in d.items() if k in names}, cls)


def _ranges(cfg: SynthConfig) -> list[tuple[str, tuple[float, float]]]:
    return [(f.name, getattr(cfg, f.name)) for f in msgspec.structs.fields(cfg)
            if isinstance(getattr(cfg, f.name), tuple)]
