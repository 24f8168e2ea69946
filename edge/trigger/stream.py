"""Streaming STA/LTA trigger with coincidence: chunks of samples in, trigger transitions out.

The station sees its data chunk by chunk (a few hundred ms per channel); this module gives,
on those chunks, the triggers ObsPy gives on the whole trace:

* **Band-pass**: the Butterworth band-pass of :func:`obspy.signal.filter.bandpass`
  (``Trace.filter("bandpass", ..., zerophase=False)``): same design (``iirfilter(corners,
  [freqmin, freqmax] / Nyquist, btype="band", ftype="butter", output="sos")``), applied
  causally with :func:`scipy.signal.sosfilt` carrying the filter state ``zi`` from chunk to
  chunk, so the filtered samples equal the whole-trace ones.
* **Characteristic function** (``method``):

  ``"recstalta"``
      :func:`obspy.signal.trigger.recursive_sta_lta`. ObsPy's C function
      (``clibsignal.recstalta``) always starts from ``sta = lta = 0`` and cannot take a
      state, so it is not used; its two recursions ``sta = csta*x**2 + (1-csta)*sta`` and
      ``lta = clta*x**2 + (1-clta)*lta`` are first-order IIR filters of the squared signal,
      run here with :func:`scipy.signal.sosfilt` and a carried state. That is the same
      arithmetic in the same order as the C loop (the tests check the result equals
      ObsPy's, in practice bit for bit), including the C code's quirks: the first sample of
      the data is skipped and the first ``nlta`` values are exactly 0.
  ``"classicstalta"``
      :func:`obspy.signal.trigger.classic_sta_lta`, computed by ObsPy's C function
      (``clibsignal.stalta``) itself: a window needs only the last ``nlta`` samples, so each
      chunk is run through the C code behind the ``nlta - 1`` filtered samples before it.
      The first ``nlta - 1`` values are 0, as ObsPy's.

  ``nsta = int(sta_s * sampling_rate)`` and ``nlta = int(lta_s * sampling_rate)`` samples,
  as :meth:`obspy.core.trace.Trace.trigger` converts them (a ``bands`` entry with a third
  item uses that STA window instead of ``sta_s``).
* **Per-channel on/off**: the samples of :func:`obspy.signal.trigger.trigger_onset`
  (``thres1 = on``, ``thres2 = off``, ``max_len = int(max_duration_s * sampling_rate +
  0.5)`` as :func:`~obspy.signal.trigger.coincidence_trigger` passes it): on at the first
  sample with ratio >= ``on``, off at the last sample with ratio >= ``off`` before it falls
  below; after a ``max_len`` cut the ratio must fall below ``on`` and rise again. Two
  additions: ``hold_s`` (the trigger stays on ``hold_s`` after the ratio falls below
  ``off``; coming back above ``off`` within the hold continues it; trigger-off is then the
  end of the hold) and the **warm-up** (below).
* **Coincidence** across channels (components, stations): an event goes on when the sum of
  the weights of the channels on at that moment reaches ``coincidence_sum``; its
  trigger-on is the first on among those channels. Channels that trigger while it is on
  join it, and it goes off when the last of its channels goes off: trigger-off and duration
  are those of the union of its channels' triggers, as in
  :func:`obspy.signal.trigger.coincidence_trigger`. (ObsPy counts the sum over chains of
  overlapping triggers; here the channels must be on at the same time, which is what a
  station can decide on the spot. On ObsPy's own UH test data both give the same events.)
* **Event rules**: an event shorter than ``min_duration_s`` is withdrawn ("cancel", after
  its "on"); one still on ``max_duration_s`` after trigger-on is closed there
  (``closed_by="max_duration"``; its channels must go off before they count again); after
  an event's off no channel trigger starting within ``dead_time_s`` counts.
* **Warm-up and gaps**: a chunk whose start time is not within half a sample of the end of
  the channel's previous chunk starts a new segment: filter and STA/LTA state restart from
  zero (as ObsPy would on a new Trace). No trigger in the first ``warmup_s`` of a segment
  (None: ``lta_s``; the ratio is 0 for the first ``lta_s`` anyway), and the first trigger
  of a segment needs the ratio to have fallen below ``off`` after the warm-up: the edge of
  a segment is treated as a trigger in progress. Right after the warm-up the recursive LTA
  has seen only ``lta_s`` of data (about 63 % of its level) and a restarted filter may
  still ring, so the ratio there is too high; ObsPy's ``trigger_onset`` triggers on it
  (e.g. at the first valid sample of ObsPy's UH1 recording), this trigger does not: a
  segment edge never triggers. This is the one place where the on/off samples differ from
  ``trigger_onset`` on the whole trace. A channel on when its data breaks off goes off at
  its last sample; an event that ends that way has ``closed_by="gap"``. Duplicated samples
  (a chunk overlapping the previous one on the same sample grid) are dropped.

Chunks may have any size and the channels interleave in any order, as long as each channel
is fed in time order and no more than ``max_lag_s`` (10 s) behind the others: an event
decision at time t waits until every live channel has data up to t, so the result does not
depend on how the chunks are cut (the tests check this). A channel further behind is not
waited for (a dead channel must not hold up the alert); its transitions are then used when
they come. (So feeding whole traces one after the other is not a coincidence trigger: the
first channel's triggers are decided before the others are seen.)

Times are :class:`~obspy.core.utcdatetime.UTCDateTime`; internally integer nanoseconds.

The parts: :mod:`edge.trigger.settings` (:class:`TriggerConfig`), :mod:`edge.trigger.bandpass`,
:mod:`edge.trigger.stalta` (:class:`StaLtaStream`), :mod:`edge.trigger.channel` (per-channel
on/off), :mod:`edge.trigger.events` (:class:`TriggerEvent`, :class:`Transition`); this module
holds the coincidence across channels, :class:`StreamingTrigger`, and names the public parts.
"""
from __future__ import annotations

import itertools

import numpy as np
from obspy import UTCDateTime

from edge.trigger.bandpass import bandpass_sos
from edge.trigger.channel import ON, Channel, ChannelTrigger
from edge.trigger.events import Transition, TriggerEvent, utc
from edge.trigger.settings import METHODS, TriggerConfig
from edge.trigger.stalta import StaLtaStream

__all__ = [
    "METHODS",
    "StaLtaStream",
    "StreamingTrigger",
    "Transition",
    "TriggerConfig",
    "TriggerEvent",
    "bandpass_sos",
]


class _Event:
    __slots__ = ("on_ns", "deadline", "last_off", "trigs", "channels", "weights", "bands")

    def __init__(self, on_ns: int, deadline: int) -> None:
        self.on_ns = on_ns
        self.deadline = deadline
        self.last_off = on_ns  # latest off among its channels' triggers (ns)
        self.trigs: list[ChannelTrigger] = []
        self.channels: list[str] = []
        self.weights: dict[str, float] = {}
        self.bands: list[tuple[float, float]] = []

    def join(self, ch: Channel, trig: ChannelTrigger) -> None:
        self.trigs.append(trig)
        if ch.seed_id not in self.weights:
            self.channels.append(ch.seed_id)
            self.weights[ch.seed_id] = ch.weight
        if ch.band not in self.bands:
            self.bands.append(ch.band)

    def peak(self) -> float:
        return max((t.peak for t in self.trigs), default=0.0)


class StreamingTrigger:
    """Coincidence STA/LTA trigger over any number of channels, fed chunk by chunk.

    Args:
        cfg: :class:`TriggerConfig` (validated here).
        max_lag_s: a channel whose data is more than this far behind the most advanced
            channel (s) is not waited for in coincidence decisions (a dead channel must not
            hold up the alert).

    Attributes:
        current_peak: highest STA/LTA ratio of the event now on (None when none is on).
    """

    def __init__(self, cfg: TriggerConfig | None = None, *, max_lag_s: float = 10.0) -> None:
        cfg = TriggerConfig() if cfg is None else cfg
        cfg.validate()
        self.cfg = cfg
        #: the trigger bands (Hz), each with its own band-pass and STA/LTA per channel
        self.bands: list[tuple[float, float]] = cfg.bands_hz()
        #: the STA window (s) of each band
        self.stas: list[float] = cfg.bands_sta_s()
        self.max_lag_ns = int(min(max_lag_s * 1e9, 2.0 ** 62))
        self._chans: dict[str, list[Channel]] = {}  # seed_id -> one Channel per band
        self._all: list[Channel] = []
        self._seq = itertools.count()
        self._npending = 0
        self._on_set: dict[tuple[str, int], tuple[Channel, ChannelTrigger]] = {}
        self._event: _Event | None = None
        self._dead_until = -(2 ** 62)
        self._min_ns = int(round(cfg.min_duration_s * 1e9))
        self._max_ns = int(round(cfg.max_duration_s * 1e9))
        self._dead_ns = int(round(cfg.dead_time_s * 1e9))
        self._need = float(cfg.coincidence_sum) - 1e-9

    # ------------------------------------------------------------------ input
    def feed(self, seed_id: str, data: np.ndarray, starttime: UTCDateTime,
             sampling_rate: float) -> list[Transition]:
        """Take the next chunk of one channel and return the event transitions it settles,
        in time order (usually none).

        Args:
            seed_id: the channel, ``NET.STA.LOC.CHA`` (its weight: see ``weights``).
            data: the samples (counts; any numeric dtype), 1-D.
            starttime: time of the first sample (UTC).
            sampling_rate: samples per second (Hz); a change starts a new segment.

        A chunk that does not start within half a sample of the end of the channel's
        previous one starts a new segment (gap); one that repeats samples already seen on
        the same grid is trimmed to the new ones.
        """
        data = np.asarray(data)
        if data.ndim != 1:
            raise ValueError(f"{seed_id}: data must be 1-D, got shape {data.shape}")
        m = data.shape[0]
        start_ns = starttime.ns if isinstance(starttime, UTCDateTime) else UTCDateTime(starttime).ns
        chans = self._chans.get(seed_id)
        if chans is None or chans[0].fs != sampling_rate:
            if chans is not None:  # a new sampling rate: a new segment with a new filter
                for c in chans:
                    self._npending += c.end("gap")
            if m == 0:
                return []
            new = [Channel(seed_id, self.cfg, float(sampling_rate), start_ns, self._seq, band, i, sta)
                   for i, (band, sta) in enumerate(zip(self.bands, self.stas))]
            if chans is not None:
                for c_new, c_old in zip(new, chans):
                    c_new.pending = c_old.pending
            self._chans[seed_id] = chans = new
            self._all = [c for cs in self._chans.values() for c in cs]
        elif m == 0:
            return []
        else:
            ch = chans[0]  # every band of a channel has the same segment and grid
            d = start_ns - ch.next_ns
            if d > ch.half_ns or d < -ch.half_ns:
                if d < 0 and ch.cft.n:  # overlap: drop samples already seen if on the grid
                    k = int(round(-d / ch.dt_ns))
                    if abs(-d - k * ch.dt_ns) <= ch.half_ns:
                        if k >= m:
                            return []
                        data = data[k:]
                        d = 0
                if d:
                    for c in chans:
                        self._npending += c.end("gap")
                        c.reset(start_ns)
        for c in chans:
            self._npending += c.process(data)
        if not self._npending and self._event is None:
            return []
        return self._settle()

    def flush(self) -> list[Transition]:
        """End of the data: channels still on go off at their last sample, every pending
        decision is made, an event still on ends ("end of data"); every channel starts a
        new segment with its next chunk."""
        for ch in self._all:
            self._npending += ch.end("end of data")
        out = self._settle(final=True)
        for ch in self._all:
            ch.reset(ch.next_ns)
        return out

    @property
    def current_peak(self) -> float | None:
        """Highest STA/LTA ratio of the event now on; None when no event is on."""
        ev = self._event
        return None if ev is None else ev.peak()

    @property
    def event_on(self) -> bool:
        """Whether an event is on."""
        return self._event is not None

    # ------------------------------------------------------------------ coincidence
    def _watermark(self) -> int:
        ks = [ch.known_ns() for ch in self._all]
        newest = max(ks)
        return min(k for k in ks if k >= newest - self.max_lag_ns)

    def _settle(self, final: bool = False) -> list[Transition]:
        w = 2 ** 62 if final else self._watermark()
        ready = []
        if self._npending:
            for ch in self._all:
                q = ch.pending
                while q and q[0][0] < w:
                    ready.append(q.popleft())
            self._npending -= len(ready)
            if len(ready) > 1:
                ready.sort(key=lambda r: (r[0], r[1], r[2]))
        out: list[Transition] = []
        for t, rank, _, ch, trig, reason in ready:
            ev = self._event
            if ev is not None and t > ev.deadline:
                self._close_max(out)
            if rank == ON:
                self._chan_on(t, ch, trig, out)
            else:
                self._chan_off(t, ch, trig, reason, out)
        ev = self._event
        if ev is not None and ev.deadline < w and not final:
            self._close_max(out)
        return out

    def _chan_on(self, t: int, ch: Channel, trig: ChannelTrigger, out: list[Transition]) -> None:
        if t < self._dead_until or ch.weight <= 0:
            trig.spent = True
            return
        self._on_set[ch.key] = (ch, trig)
        ev = self._event
        if ev is not None:
            ev.join(ch, trig)
            return
        # coincidence per band: the weights of the channels on in this trigger's band
        band = [(c, tr) for c, tr in self._on_set.values() if c.index == ch.index]
        total = sum(c.weight for c, _ in band)
        if total >= self._need:
            on_ns = min(tr.on_ns for _, tr in band)
            ev = _Event(on_ns, on_ns + self._max_ns)
            # the band that made it first, then channels on in other bands (they join: the
            # event lasts until the last of them goes off)
            members = sorted(self._on_set.values(),
                             key=lambda m: (m[0].index != ch.index, m[1].on_ns, m[0].index))
            for c, tr in members:
                ev.join(c, tr)
            self._event = ev
            out.append(Transition("on", self._snapshot(ev)))

    def _chan_off(self, t: int, ch: Channel, trig: ChannelTrigger, reason: str,
                  out: list[Transition]) -> None:
        held = self._on_set.get(ch.key)
        if held is None or held[1] is not trig:
            return  # a trigger that does not count (dead time, weight 0, spent)
        del self._on_set[ch.key]
        ev = self._event
        if ev is not None:
            if t >= ev.last_off:
                ev.last_off = t
            if not self._on_set:
                # the union of its channels' triggers (an off may come late, after a gap of
                # a channel that was not waited for)
                self._close(ev, ev.last_off, reason, out)

    def _close_max(self, out: list[Transition]) -> None:
        ev = self._event
        for _, trig in self._on_set.values():
            trig.spent = True
        self._on_set.clear()
        self._close(ev, ev.deadline, "max_duration", out)

    def _close(self, ev: _Event, t: int, reason: str, out: list[Transition]) -> None:
        self._event = None
        kind = "cancel" if t - ev.on_ns < self._min_ns else "off"
        if kind == "off":
            self._dead_until = t + self._dead_ns
        out.append(Transition(kind, self._snapshot(ev, t, reason)))

    @staticmethod
    def _snapshot(ev: _Event, off_ns: int | None = None, reason: str | None = None) -> TriggerEvent:
        return TriggerEvent(trigger_on=utc(ev.on_ns),
                            trigger_off=None if off_ns is None else utc(off_ns),
                            cft_peak=ev.peak(), channels=list(ev.channels), closed_by=reason,
                            coincidence_sum=float(sum(ev.weights.values())),
                            bands=list(ev.bands))
