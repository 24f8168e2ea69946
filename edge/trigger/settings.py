"""``[trigger]`` settings of the streaming STA/LTA trigger (:class:`TriggerConfig`, a msgspec
Struct declared on :mod:`edge.schema`) and their checks: every problem is reported with the
key it belongs to."""
from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.schema import Invalid, convert, num, validate

__all__ = ["DEFAULT_BAND", "METHODS", "TriggerConfig"]

Method = Literal["recstalta", "classicstalta"]
#: the characteristic functions :class:`~edge.trigger.stream.StreamingTrigger` computes
#: (ObsPy's names)
METHODS: tuple[str, ...] = typing.get_args(Method)
Seconds = Annotated[float, Meta(ge=0)]
Hz = Annotated[float, Meta(gt=0)]

#: the trigger band (Hz) when neither ``bands`` nor ``freqmin``/``freqmax`` is set (outside a
#: station; the station takes its bands from the model bundle, :mod:`edge.trigger.bands`)
DEFAULT_BAND = (1.0, 20.0)


class TriggerConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[trigger]``: the streaming STA/LTA trigger.

    Constructing it checks the relations between fields (``lta_s > sta_s``, ``on > off``,
    ...); :meth:`from_dict` and :meth:`validate` also check types and bounds. Errors name the
    key, e.g. ``"sta_s: must be > 0, got -1"``.
    """

    method: Annotated[Method, Meta(description="characteristic function: \"recstalta\" (ObsPy's "
                                               "recursive_sta_lta) or \"classicstalta\" "
                                               "(classic_sta_lta)")] = "recstalta"
    sta_s: Annotated[float, Meta(gt=0, description="short-term average window (s) of a band without its own "
                                                   "(a bands entry's third item); the bands the station takes "
                                                   "from the model bundle each get one matched to the band "
                                                   "(edge.trigger.bands.band_sta_s)")] = 0.2
    lta_s: Annotated[float, Meta(gt=0, description="long-term average window (s); > sta_s")] = 10.0
    on: Annotated[float, Meta(gt=0, description="STA/LTA ratio that turns a channel's trigger on; "
                                                "> off")] = 5.0
    off: Annotated[float, Meta(gt=0, description="STA/LTA ratio below which it turns off")] = 1.5
    freqmin: Annotated[Hz | None, Meta(
        description="band-pass low corner of a single trigger band (Hz); unset: 1 Hz when freqmax is "
                    "set, else see bands", examples=[1.0])] = None
    freqmax: Annotated[Hz | None, Meta(
        description="band-pass high corner of a single trigger band (Hz); at or above Nyquist a "
                    "high-pass at freqmin (as ObsPy); unset: 20 Hz when freqmin is set", examples=[20.0])] = None
    bands: Annotated[list[Annotated[list[Hz], Meta(min_length=2, max_length=3)]], Meta(
        description="several trigger bands [[low, high], ...] (Hz), each with its own band-pass and "
                    "STA/LTA; an optional third item is the band's own STA window (s, < lta_s; else "
                    "sta_s), e.g. [20, 200, 0.05]. An event goes on when any band's coincidence sum is "
                    "reached. Empty with freqmin/freqmax unset: the station takes the model bundle's "
                    "bands (clipped to 0.45 x the digitizer rate, each with an STA matched to it). Not "
                    "together with freqmin/freqmax")] = []
    corners: Annotated[int, Meta(ge=1, le=20, description="band-pass corners (filter order per side, as "
                                                          "ObsPy's corners)")] = 4
    min_duration_s: Annotated[float, Meta(ge=0, description="an event shorter than this is withdrawn "
                                                            "(\"cancel\") (s)")] = 0.0
    max_duration_s: Annotated[float, Meta(gt=0, description="an event (and a channel trigger) still on "
                                                            "after this long is closed (s)")] = 120.0
    dead_time_s: Annotated[float, Meta(ge=0, description="after an event's off, channel triggers "
                                                         "starting within this long do not count "
                                                         "(s)")] = 0.0
    hold_s: Annotated[float, Meta(ge=0, description="a channel's trigger stays on this long after its "
                                                    "ratio falls below off (s)")] = 0.0
    coincidence_sum: Annotated[float, Meta(gt=0, description="sum of the weights of the channels on at "
                                                             "once that turns an event on")] = 1.0
    weights: Annotated[dict[str, Annotated[float, Meta(ge=0)]], Meta(
        description="weight of a channel in the coincidence sum, by SEED id (\"XX.S1..HHZ\") or "
                    "channel code, e.g. { HHZ = 1.0 }; not listed = 1, 0 = left out")] = {}
    warmup_s: Annotated[Seconds | None, Meta(
        description="no trigger in the first warmup_s of data of a channel and after each gap (s); "
                    "unset = lta_s", examples=[10.0])] = None

    def __post_init__(self) -> None:
        def above(key: str, other: str) -> tuple[str, str] | None:
            v, lo = getattr(self, key), getattr(self, other)
            return None if v > lo else (key, f"must be > {other} = {num(lo)}, got {num(v)}")

        Invalid.check([
            above("lta_s", "sta_s"), above("on", "off"), self._band_problem(),
            above("max_duration_s", "min_duration_s"),
            ("weights", "a key must be a SEED id or channel code, got \"\"") if "" in self.weights else None,
            ("bands", "set either bands or freqmin/freqmax, not both")
            if self.bands and (self.freqmin is not None or self.freqmax is not None) else None,
            *((("bands", i), f"must be [low, high] with 0 < low < high (Hz), got [{num(b[0])}, {num(b[1])}]")
              for i, b in enumerate(self.bands) if not 0 < b[0] < b[1]),
            *((("bands", i, 2), f"the band's STA window must be > 0 and < lta_s = {num(self.lta_s)}, got "
               f"{num(b[2])}") for i, b in enumerate(self.bands) if len(b) > 2 and not 0 < b[2] < self.lta_s),
        ])

    def _band_problem(self) -> tuple[str, str] | None:
        lo, hi = self._single_band()
        if (self.freqmin is not None or self.freqmax is not None) and not hi > lo:
            key = "freqmax" if self.freqmax is not None else "freqmin"
            rel = (f"> freqmin = {num(lo)}, got {num(hi)}" if key == "freqmax"
                   else f"< freqmax = {num(hi)}, got {num(lo)}")
            return key, f"must be {rel}"
        return None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TriggerConfig:
        """Build and validate from a mapping of field names to values (a parsed
        ``[trigger]`` table); missing keys take their default. Raises
        :class:`edge.schema.ConfigError` (a ValueError), one line per problem, each starting
        with the key, e.g. ``"sta_s: must be > 0, got -1"``."""
        return convert(d, cls)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (``weights`` copied); an unset ``warmup_s`` is left
        out, so ``from_dict(to_dict())`` gives an equal configuration."""
        return {k: v for k, v in msgspec.to_builtins(self).items() if v is not None}

    def validate(self) -> None:
        """Check types and bounds too (construction checks the relations); raises
        :class:`edge.schema.ConfigError` naming the key (see :meth:`from_dict`)."""
        validate(self)

    def _single_band(self) -> tuple[float, float]:
        lo = DEFAULT_BAND[0] if self.freqmin is None else float(self.freqmin)
        hi = DEFAULT_BAND[1] if self.freqmax is None else float(self.freqmax)
        return lo, hi

    def configured_bands(self) -> list[tuple[float, float]] | None:
        """The bands this configuration names (``bands``, or ``[(freqmin, freqmax)]`` when
        either is set), or None when it names none (the station then uses the bundle's)."""
        if self.bands:
            return [(float(b[0]), float(b[1])) for b in self.bands]
        if self.freqmin is not None or self.freqmax is not None:
            return [self._single_band()]
        return None

    def bands_sta_s(self) -> list[float]:
        """The STA window (s) of each band of :meth:`bands_hz`: a ``bands`` entry's third
        item, else ``sta_s``."""
        if self.bands:
            return [float(b[2]) if len(b) > 2 else float(self.sta_s) for b in self.bands]
        return [float(self.sta_s)]

    def bands_hz(self) -> list[tuple[float, float]]:
        """The trigger bands (Hz) :class:`~edge.trigger.stream.StreamingTrigger` runs:
        :meth:`configured_bands`, else ``[DEFAULT_BAND]``."""
        return self.configured_bands() or [DEFAULT_BAND]

    def with_bands(self, bands: list[tuple[float, ...]]) -> TriggerConfig:
        """A copy running exactly ``bands``: ``(low, high)`` Hz, or ``(low, high, sta_s)`` with
        the band's own STA window (s) (``freqmin``/``freqmax`` unset)."""
        d = self.to_dict()
        d.pop("freqmin", None)
        d.pop("freqmax", None)
        d["bands"] = [[float(v) for v in b] for b in bands]
        return type(self).from_dict(d)

    def weight(self, seed_id: str) -> float:
        """The coincidence weight of a channel: ``weights[seed_id]``, else
        ``weights[channel code]``, else 1."""
        w = self.weights.get(seed_id)
        if w is None:
            w = self.weights.get(seed_id.rsplit(".", 1)[-1], 1.0)
        return float(w)
