"""What the streaming trigger reports: coincidence events (:class:`TriggerEvent`) and their
transitions (:class:`Transition`: on, off, cancel)."""
from __future__ import annotations

from dataclasses import dataclass, field

from obspy import UTCDateTime

__all__ = ["TriggerEvent", "Transition", "utc"]


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
        bands: the trigger bands ``(low, high)`` Hz in which its channels triggered, in order
            of joining.
    """

    trigger_on: UTCDateTime
    trigger_off: UTCDateTime | None = None
    cft_peak: float = 0.0
    channels: list[str] = field(default_factory=list)
    closed_by: str | None = None
    coincidence_sum: float = 0.0
    bands: list[tuple[float, float]] = field(default_factory=list)

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


def utc(ns: int) -> UTCDateTime:
    """Integer nanoseconds as a UTCDateTime."""
    return UTCDateTime(ns=int(ns))

