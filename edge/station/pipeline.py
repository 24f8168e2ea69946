"""The station's event pipeline, without I/O threads: chunks of samples in, event messages out.

    Chunk (native digitizer rate, raw counts) -> RingBuffers (for windows) -> archive
          -> StreamingTrigger (per band: stateful bandpass + ObsPy's STA/LTA; coincidence)
             trigger on  -> ``new`` message at once (the early alert), unless the trigger
                            belongs to the event still open (association, below)
             trigger off -> wait ``merge_s`` for a further trigger of the same event and until
                            the window's data is in -> cut (pre 2 s before the first trigger,
                            post 4 s after the last, capped at max_window_s) -> preprocess
                            (edge.signal.preprocess, the code the model was trained with: it
                            resamples the cut to the model's rate) -> bundle model (MC-dropout)
                            -> ML (Wood-Anderson, S-P distance) -> ``end`` message -> snippet

**Association** (``merge_s``, ``max_event_s``): a trigger that turns on within ``merge_s``
after the previous trigger of the open event turned off, and within ``max_event_s`` of the
event's first trigger, is a *sub-trigger* of that event (the S phase of a local earthquake,
the impacts of a rockfall, coda re-triggers): no second ``new``, one ``end`` whose
trigger_on/trigger_off span all its sub-triggers and which lists them (``sub_triggers``).
An event is closed once the data has passed its last trigger-off + ``merge_s``; a trigger
after that is a new event. (A trigger reported after the close whose onset lies inside the
merge window -- possible only when a channel lags the others -- also starts a new event.)

:class:`EventPipeline` is driven by :mod:`edge.station.daemon` (live) and by tests and benchmarks
(replays) alike; it hands messages to a :class:`Publisher`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from obspy import Inventory, Stream, UTCDateTime

from edge.comms.messages import EventEnd, EventNew, Magnitude, ModelRef, event_id, iso_utc
from edge.model.inference import EventClassifier
from edge.signal.dataset import response_for
from edge.signal.preprocess import PreprocessError, preprocess_stream
from edge.station.event_magnitude import event_ml, load_ml_modules, s_like_onset
from edge.station.input import Chunk
from edge.station.ring_buffer import RingBuffers

__all__ = ["Publisher", "EventSettings", "OpenEvent", "EventPipeline", "ml_start"]

log = logging.getLogger(__name__)

def _bands(ev) -> list[tuple[float, float]]:
    """The trigger bands (Hz) of a trigger event (none for triggers that do not say)."""
    return [(float(b[0]), float(b[1])) for b in getattr(ev, "bands", None) or []]


def ml_start(subs: list[dict[str, Any]], anchor: UTCDateTime, st: Stream) -> UTCDateTime:
    """Where the ML picks start: the ``anchor`` (the main sub-trigger: picks on a small
    earlier trigger would fake an S-P), unless the anchor's arrival is an S
    (:func:`~edge.station.event_magnitude.s_like_onset`: its horizontals move most) and a
    sub-trigger came before it: then that one, its P (a distant quake whose S re-triggers
    more strongly than its P: from the anchor on, the picker would see no P)."""
    before = [sub["trigger_on"] for sub in subs if sub["trigger_on"] < anchor]
    if before and s_like_onset(st, anchor):
        return max(before)
    return anchor


class Publisher(Protocol):
    """Where messages go (the MQTT link, or a list in tests)."""

    def event_new(self, msg: dict[str, Any]) -> None: ...

    def event_end(self, msg: dict[str, Any]) -> None: ...


@dataclass
class EventSettings:
    """Event window and classification settings (``[event]`` and ``[magnitude]``).

    Attributes:
        pre_s: seconds of data before trigger-on in the event snippet (2).
        post_s: seconds after trigger-off (4).
        max_window_s: cap on the snippet length from trigger-on (60).
        mc_passes: MC-dropout passes per event (None: the bundle's).
        sensitivity: counts per m/s (flat), for the model's amplitude input and ML.
        inventory: StationXML responses (takes precedence over ``sensitivity``).
        vp_km_s, vs_km_s: velocities for the S-P distance.
        stale_s: wall seconds without new data after which a pending event is classified
            with the data there is (the link died mid-event).
        merge_s: a trigger turning on within this long after the open event's last
            trigger-off joins that event (s); 0: every trigger is its own event.
        max_event_s: no trigger joins an event whose first trigger-on is more than this long
            before it (s).
    """

    pre_s: float = 2.0
    post_s: float = 4.0
    max_window_s: float = 60.0
    mc_passes: int | None = None
    sensitivity: float | None = None
    inventory: Inventory | None = None
    vp_km_s: float = 6.0
    vs_km_s: float = 3.5
    stale_s: float = 5.0
    merge_s: float = 10.0
    max_event_s: float = 120.0


#: sub-triggers listed in an ``end`` message (the count is always exact)
MAX_LISTED_SUB_TRIGGERS = 50


@dataclass
class OpenEvent:
    """An event between trigger-on and its ``end`` message."""

    id: str
    trigger_on: UTCDateTime
    received: float                      # wall time the triggering data arrived
    cft_peak: float = 0.0
    trigger_off: UTCDateTime | None = None
    channels: list[str] = field(default_factory=list)
    closed_by: str | None = None
    need_until: UTCDateTime | None = None  # data time the window needs
    new_latency_ms: float | None = None
    #: the triggers of this event: {"trigger_on", "trigger_off", "bands", "cft_peak"}
    subs: list[dict[str, Any]] = field(default_factory=list)


class EventPipeline:
    """Chunks in, ``new``/``end`` messages out (see the module docstring).

    Args:
        station: ``NET.STA``.
        trigger: a :class:`edge.trigger.stream.StreamingTrigger`.
        classifier: the loaded bundle (:class:`edge.model.inference.EventClassifier`).
        publisher: receives the messages.
        settings: :class:`EventSettings`.
        archive: optional :class:`edge.station.archive.SdsArchive` (raw data and snippets).
        buffer_s: ring buffer length (s); must exceed the longest event + pre + margins.
        clock: wall clock (``time.time``).
    """

    def __init__(self, station: str, trigger, classifier: EventClassifier, publisher: Publisher,
                 settings: EventSettings | None = None, archive=None, buffer_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.station = station
        self.trigger = trigger
        self.classifier = classifier
        self.publisher = publisher
        self.settings = settings or EventSettings()
        self.archive = archive
        spec = classifier.window_spec
        s = self.settings
        if s.inventory is not None:
            # not at the first event (latency): the full response (ObsPy's evalresp, in the
            # model's preprocessing and ML's remove_response) imports obspy.signal; ML with a
            # flat sensitivity needs only light modules (docs/performance.md)
            load_ml_modules(inventory=True)
        need = max(s.max_window_s, spec.length_s) + s.pre_s + 2 * spec.margin_s
        # an event is closed merge_s after its last trigger-off, which may come up to
        # max_event_s + the trigger's max_duration_s after its first trigger-on
        longest = s.max_event_s + float(getattr(getattr(trigger, "cfg", None), "max_duration_s", 120.0))
        need = max(need, longest + s.merge_s + s.pre_s + 2 * spec.margin_s)
        self.ring = RingBuffers(buffer_s or max(180.0, need + 60.0))
        self.clock = clock
        self.open: dict[str, OpenEvent] = {}
        #: ``end`` messages published so far (a count: the messages themselves go to the publisher)
        self.events_ended = 0
        self.errors: list[str] = []
        self.samples = 0
        self.last_event_time: UTCDateTime | None = None
        self._last_data_wall = clock()
        self._chunk_received = self._last_data_wall
        self._current: OpenEvent | None = None

    # ------------------------------------------------------------------ input
    def process(self, chunk: Chunk) -> None:
        """Take one channel's chunk: buffer, archive, trigger, maybe publish/classify."""
        received = chunk.received or self.clock()
        self._last_data_wall = received
        self._chunk_received = received
        self.ring.append(chunk.seed_id, chunk.data, chunk.starttime, chunk.sampling_rate)
        self.samples += int(chunk.data.size)
        if self.archive is not None:
            self.archive.add(chunk.seed_id, chunk.data, chunk.starttime, chunk.sampling_rate)
        for tr in self.trigger.feed(chunk.seed_id, chunk.data, chunk.starttime, chunk.sampling_rate):
            if tr.kind == "on":
                self._on(tr.event, received)
            elif tr.kind == "off":
                self._off(tr.event)
            elif tr.kind == "cancel":
                self._cancel(tr.event)
        if self._current is not None:
            peak = getattr(self.trigger, "current_peak", None)
            if peak is not None:
                self._current.cft_peak = max(self._current.cft_peak, float(peak))
        self._close_due()

    def _on(self, ev, received: float) -> None:
        on = UTCDateTime(ev.trigger_on)
        sub = {"trigger_on": on, "trigger_off": None, "bands": _bands(ev),
               "cft_peak": float(getattr(ev, "cft_peak", 0.0) or 0.0)}
        oe = self._joins(on)
        if oe is not None:  # a sub-trigger of the open event: no second ``new``
            oe.subs.append(sub)
            oe.trigger_off = oe.need_until = None
            oe.cft_peak = max(oe.cft_peak, sub["cft_peak"])
            oe.channels += [c for c in getattr(ev, "channels", []) or [] if c not in oe.channels]
            self._current = oe
            log.info("event %s: sub-trigger %d at %s", oe.id, len(oe.subs), on)
            return
        oe = OpenEvent(id=event_id(self.station, on), trigger_on=on, received=received,
                       cft_peak=sub["cft_peak"], channels=list(getattr(ev, "channels", []) or []),
                       subs=[sub])
        self.open[oe.id] = oe
        self._current = oe
        self.publisher.event_new(EventNew.create(self.station, on, round(oe.cft_peak, 3)).to_dict())
        oe.new_latency_ms = (self.clock() - received) * 1e3
        log.info("event %s: trigger on (cft %.1f)", oe.id, oe.cft_peak)

    def _joins(self, on: UTCDateTime) -> OpenEvent | None:
        """The open event a trigger turning on at ``on`` belongs to (association), or None."""
        s = self.settings
        if s.merge_s <= 0:
            return None
        best = None
        for oe in self.open.values():
            if (oe.trigger_off is not None and 0 <= float(on - oe.trigger_off) <= s.merge_s
                    and float(on - oe.trigger_on) <= s.max_event_s):
                if best is None or oe.trigger_off > best.trigger_off:
                    best = oe
        return best

    def _match(self, ev) -> OpenEvent | None:
        if self._current is not None and self._current.trigger_off is None:
            return self._current
        return self.open.get(event_id(self.station, UTCDateTime(ev.trigger_on)))

    def _schedule(self, oe: OpenEvent) -> None:
        """When the event may close: its window's data is in and ``merge_s`` has passed."""
        s, spec = self.settings, self.classifier.window_spec
        snippet_end = min(oe.trigger_off + s.post_s, oe.trigger_on + s.max_window_s)
        model_end = self._anchor(oe) - spec.pre_s + spec.length_s + spec.margin_s
        oe.need_until = max(snippet_end, model_end, oe.trigger_off + s.merge_s)

    def _anchor(self, oe: OpenEvent) -> UTCDateTime:
        """Where the model window (and the ML picks) start ``pre_s`` before: the first
        trigger, unless the sub-trigger with the highest STA/LTA peak -- the main arrival --
        turns on in the back half of a window placed there (the model would see little of
        it, e.g. a small trigger ~10 s before a quake); then that sub-trigger."""
        first = oe.trigger_on
        if len(oe.subs) < 2:
            return first
        spec = self.classifier.window_spec
        main = max(oe.subs, key=lambda sub: sub["cft_peak"])["trigger_on"]
        return main if float(main - first) > 0.5 * (spec.length_s - spec.pre_s) else first

    def _off(self, ev) -> None:
        oe = self._match(ev)
        if oe is None:
            log.warning("trigger off without an open event at %s", getattr(ev, "trigger_on", "?"))
            return
        off = UTCDateTime(ev.trigger_off)
        oe.trigger_off = max(off, oe.trigger_off) if oe.trigger_off is not None else off
        peak = float(getattr(ev, "cft_peak", 0.0) or 0.0)
        oe.cft_peak = max(oe.cft_peak, peak)
        oe.channels += [c for c in getattr(ev, "channels", []) or [] if c not in oe.channels]
        oe.closed_by = getattr(ev, "closed_by", "off")
        if oe.subs:
            sub = oe.subs[-1]
            sub["trigger_off"], sub["cft_peak"] = off, max(sub["cft_peak"], peak)
            sub["bands"] = _bands(ev) or sub["bands"]
        self._schedule(oe)
        if self._current is oe:
            self._current = None

    def _cancel(self, ev) -> None:
        oe = self._match(ev)
        if oe is None:
            return
        if self._current is oe:
            self._current = None
        if len(oe.subs) > 1:  # a too-short sub-trigger: the event stays as it was before it
            oe.subs.pop()
            oe.trigger_off = oe.subs[-1]["trigger_off"]
            self._schedule(oe)
            return
        self.open.pop(oe.id, None)

    # ------------------------------------------------------------------ closing
    def _close_due(self, force: bool = False) -> None:
        if not self.open:
            return
        data_end = self.ring.endtime()
        for oe in list(self.open.values()):
            if oe.need_until is None:
                continue
            if force or (data_end is not None and data_end >= oe.need_until):
                self.open.pop(oe.id, None)
                self._classify(oe, force)

    def tick(self) -> None:
        """Call now and then (the daemon does, every loop): classifies pending events whose
        data stopped coming (link lost mid-event) after ``stale_s``."""
        if self.open and self.clock() - self._last_data_wall > self.settings.stale_s:
            self._close_due(force=True)

    def flush(self) -> None:
        """Classify every pending event with the data there is (end of a replay, shutdown).
        An event still on gets trigger-off = the end of the data."""
        data_end = self.ring.endtime()
        for oe in list(self.open.values()):
            if oe.trigger_off is None:
                oe.trigger_off = data_end or oe.trigger_on
                oe.closed_by = "end of data"
                oe.need_until = oe.trigger_off
        self._close_due(force=True)
        self._current = None

    def _classify(self, oe: OpenEvent, forced: bool = False) -> None:
        s, clf = self.settings, self.classifier
        spec = clf.window_spec
        t_start = self.clock()
        trigger_off = oe.trigger_off or oe.trigger_on
        anchor = self._anchor(oe)
        t0 = oe.trigger_on - max(s.pre_s, spec.pre_s) - spec.margin_s
        t1 = max(oe.need_until or trigger_off, trigger_off)
        st = self.ring.stream(t0, t1)
        calibration = self._calibration(st)
        extra: dict[str, Any] = {"closed_by": oe.closed_by or "off"}
        if len(oe.subs) > 1:
            s_last = oe.subs[-1]["trigger_off"]
            if s_last is None or s_last < trigger_off:  # an open sub-trigger ended by flush()
                oe.subs[-1]["trigger_off"] = trigger_off
        mutual_information = None
        reason_model = None
        try:
            window = preprocess_stream(st, anchor, spec, **calibration)
            row = clf.row(clf.predict_window(window))
            event_class = row["class"]
            probabilities = {k: round(v, 6) for k, v in row["probabilities"].items()}
            uncertainty = round(row["uncertainty"], 6)
            mutual_information = round(row["mutual_information"], 6)
            extra["window"] = {"coverage": round(window.coverage, 4), "units": window.units,
                               "flags": list(window.flags), "trigger": iso_utc(anchor)}
            model_mag = row["magnitude"]
            if event_class == "noise":
                model_mag, reason_model = None, "class noise: no magnitude"
            elif window.units != "m/s":
                model_mag, reason_model = None, ("no station response configured ([magnitude] stationxml "
                                                 "or sensitivity): the model's magnitude needs m/s")
        except PreprocessError as exc:
            self.errors.append(f"{oe.id}: {exc}")
            n = len(clf.classes)
            event_class, uncertainty = "unknown", 1.0
            probabilities = {c: round(1.0 / n, 6) for c in clf.classes}
            extra["error"] = f"window unusable: {exc}"
            model_mag, reason_model = None, f"window unusable: {exc}"
        snippet = st.slice(oe.trigger_on - s.pre_s, min(trigger_off + s.post_s, oe.trigger_on + s.max_window_s))
        # ML from the main arrival on (picks on a small earlier trigger would fake an S-P),
        # unless the main arrival is an S: then its P is the sub-trigger before it (a distant
        # quake whose S re-triggers more strongly than its P)
        ml_from = ml_start(oe.subs, anchor, st) if event_class not in ("noise", "unknown") else anchor
        ml_st = snippet if ml_from == oe.trigger_on else st.slice(
            ml_from - s.pre_s, min(trigger_off + s.post_s, ml_from + s.max_window_s))
        ml_part = {"ml": None, "reason": "class noise: no magnitude"}
        if event_class not in ("noise", "unknown"):
            ml_part = event_ml(ml_st, inventory=s.inventory, sensitivity=s.sensitivity,
                               vp_km_s=s.vp_km_s, vs_km_s=s.vs_km_s, trigger_on=ml_from,
                               trigger_off=trigger_off).to_dict()
        reasons = [r for r in (ml_part.get("reason") and f"ml: {ml_part['reason']}",
                               reason_model and f"model: {reason_model}") if r]
        magnitude = Magnitude(ml_part.get("ml"), model_mag, "; ".join(reasons) or None,
                              ml_part.get("distance_km"),
                              {k: ml_part[k] for k in ("s_minus_p_s", "ml_method", "distance_max_km",
                                                       "s_minus_p_max_s") if k in ml_part})
        now = self.clock()
        # latency: from the arrival of the data that completed the window to publication
        # (forced closes -- stale link, end of data -- count from the close itself)
        ready = t_start if forced else min(self._chunk_received, t_start)
        extra["processing_ms"] = round((now - t_start) * 1e3, 3)
        if oe.new_latency_ms is not None:
            extra["new_latency_ms"] = round(oe.new_latency_ms, 3)
        end = EventEnd(
            id=oe.id, station=self.station, trigger_on=iso_utc(oe.trigger_on),
            trigger_off=iso_utc(trigger_off),
            duration_s=round(max(0.0, float(trigger_off - oe.trigger_on)), 3),
            cft_peak=round(oe.cft_peak, 3), event_class=event_class, probabilities=probabilities,
            uncertainty=uncertainty, magnitude=magnitude, model=ModelRef(**clf.info.to_message()),
            latency_ms=round(max(0.0, (now - ready) * 1e3), 3), channels=oe.channels,
            mutual_information=mutual_information, sub_triggers=self._sub_triggers(oe, trigger_off),
            extra=extra)
        if self.archive is not None:
            try:
                end.snippet = str(self.archive.write_snippet(oe.id, snippet, end.to_dict()))
            except Exception as exc:  # noqa: BLE001 -- a full disk must not lose the alert
                log.warning("event %s: snippet not archived: %s", oe.id, exc)
        msg = end.to_dict()
        self.last_event_time = oe.trigger_on
        self.events_ended += 1
        self.publisher.event_end(msg)
        log.info("event %s: %s (p=%.2f, unc %.2f), ML %s, %.1f ms", oe.id, event_class,
                 max(probabilities.values()), uncertainty, magnitude.ml, end.latency_ms)

    @staticmethod
    def _sub_triggers(oe: OpenEvent, trigger_off: UTCDateTime) -> dict[str, Any]:
        """The ``sub_triggers`` object of an ``end``: their count and the first
        :data:`MAX_LISTED_SUB_TRIGGERS` (on, off, bands, cft peak)."""
        listed = []
        for sub in oe.subs[:MAX_LISTED_SUB_TRIGGERS]:
            off = sub["trigger_off"] if sub["trigger_off"] is not None else trigger_off
            listed.append({"trigger_on": iso_utc(sub["trigger_on"]), "trigger_off": iso_utc(off),
                           "bands": [list(b) for b in sub["bands"]],
                           "cft_peak": round(sub["cft_peak"], 3)})
        return {"count": max(1, len(oe.subs)), "triggers": listed}

    def _calibration(self, st: Stream) -> dict[str, Any]:
        """Keyword arguments of :func:`preprocess_stream` that give m/s: each channel's full
        response from the StationXML (removed to ground velocity: right for a geophone below
        its natural frequency and for an accelerometer), else the flat ``sensitivity``, else
        nothing (counts; the model's magnitude is then left out)."""
        s = self.settings
        if s.inventory is not None:
            out = {}
            for tr in st:
                try:
                    out[tr.id] = response_for(s.inventory, tr.id, tr.stats.starttime)
                except Exception:  # noqa: BLE001
                    continue
            if out:
                return {"response": out}
        if s.sensitivity is not None:
            return {"sensitivity": s.sensitivity}
        return {}
