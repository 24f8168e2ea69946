"""Fault injection for the virtual digitizer: the things that happen on a cold wet slope.

A fault spec is a comma-separated list, e.g.
``garbage=0.05,bitflip=0.01,drop=0.01,truncate=0.005,restart=60,wrap,pps-loss=20:30,unplug=40:5,seed=7``.

=================  =========================================================================
``garbage=P``      before each frame, with probability P, 1–64 random bytes (syncs included)
``bitflip=P``      with probability P per frame, one random bit of the frame is flipped
``drop=P``         with probability P a frame is not sent (seq and sample index move on)
``truncate=P``     with probability P only a random prefix of the frame is sent
``restart=T``      at T seconds of stream time the digitizer reboots: sample index and seq to 0
``wrap``           seq starts 20 frames before 2^32 so that it wraps almost at once
``pps-loss=T:D``   from T for D seconds: no PPS/GNSS, time quality drops (holdover)
``unplug=T:D``     at T the serial device disappears for D seconds (USB unplug), then returns
``seed=N``         random seed of the faults (default 0)
=================  =========================================================================

Times are seconds of stream time since the simulator started.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: every fault at once, at rates that keep a link report readable (``--faults all``)
ALL_FAULTS = "garbage=0.02,bitflip=0.01,drop=0.01,truncate=0.005,wrap,pps-loss=8:6,unplug=15:3,restart=24"


@dataclass
class FaultSpec:
    """Parsed ``--faults`` specification (probabilities per frame, times in seconds)."""

    garbage: float = 0.0
    bitflip: float = 0.0
    drop: float = 0.0
    truncate: float = 0.0
    restart_at: list[float] = field(default_factory=list)
    wrap: bool = False
    pps_loss: list[tuple[float, float]] = field(default_factory=list)
    unplug: list[tuple[float, float]] = field(default_factory=list)
    seed: int = 0

    @property
    def any(self) -> bool:
        return bool(self.garbage or self.bitflip or self.drop or self.truncate or self.restart_at
                    or self.wrap or self.pps_loss or self.unplug)

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Parse a spec string; raises ValueError naming the bad item."""
        out = cls()
        if not spec or spec.strip() in ("", "none"):
            return out
        if spec.strip() == "all":
            spec = ALL_FAULTS
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name = name.strip().replace("_", "-")
            try:
                if name in ("garbage", "bitflip", "drop", "truncate"):
                    p = float(value)
                    if not 0.0 <= p <= 1.0:
                        raise ValueError("a probability must be within 0..1")
                    setattr(out, name, p)
                elif name == "restart":
                    out.restart_at.append(_seconds(value))
                elif name == "wrap":
                    if value:
                        raise ValueError("takes no value")
                    out.wrap = True
                elif name in ("pps-loss", "unplug"):
                    start, sep, dur = value.partition(":")
                    if not sep:
                        raise ValueError("expected START:DURATION in seconds")
                    window = (_seconds(start), _seconds(dur))
                    (out.pps_loss if name == "pps-loss" else out.unplug).append(window)
                elif name == "seed":
                    out.seed = int(value)
                else:
                    raise ValueError("unknown fault (known: garbage, bitflip, drop, truncate, "
                                     "restart, wrap, pps-loss, unplug, seed, or 'all')")
            except ValueError as exc:
                raise ValueError(f"bad fault {item!r}: {exc}") from None
        return out

    def in_pps_loss(self, t: float) -> bool:
        return any(start <= t < start + dur for start, dur in self.pps_loss)


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("times must be ≥ 0 seconds")
    return value
