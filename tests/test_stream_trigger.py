"""edge.trigger.stream on real recordings, fed chunk by chunk, against ObsPy on whole traces.

Data: ObsPy's UH recordings (shared/notes/real-data.md): BW.UH1-3 SHZ at 50 Hz and BW.UH4
EHZ at 100 Hz, 230 s from 2010-05-27 16:24:03.68 with local earthquakes. References are
computed here with ObsPy (``Trace.filter``, ``recursive_sta_lta``, ``classic_sta_lta``,
``trigger_onset``, ``coincidence_trigger``); nothing is mocked.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime, read
from obspy.signal.trigger import classic_sta_lta, coincidence_trigger, recursive_sta_lta, trigger_onset

from edge.trigger import bandpass, stalta
from edge.trigger.stream import StaLtaStream, StreamingTrigger, Transition, TriggerConfig, TriggerEvent, bandpass_sos

UH_FILES = ["BW.UH1._.SHZ.D.2010.147.cut.slist.gz", "BW.UH2._.SHZ.D.2010.147.cut.slist.gz",
            "BW.UH3._.SHZ.D.2010.147.cut.slist.gz", "BW.UH4._.EHZ.D.2010.147.cut.slist.gz"]
T0 = "2010-05-27T16:"

#: ObsPy's signal/tests/test_trigger.py setup: bandpass 10-20 Hz (zerophase=False, 4 corners),
#: coincidence_trigger("recstalta", 3.5, 1, st, 3, sta=0.5, lta=10); max_trigger_length is
#: ObsPy's default 1e6 s
UH = dict(method="recstalta", sta_s=0.5, lta_s=10.0, on=3.5, off=1.0, freqmin=10.0,
          freqmax=20.0, corners=4, coincidence_sum=3.0, max_duration_s=1e6)
#: the three events ObsPy's own test asserts (time, duration s, stations)
UH_EVENTS = [("24:33.21", 4.27, {"UH3", "UH2", "UH1", "UH4"}),
             ("27:01.26", 3.44, {"UH2", "UH3", "UH1"}),
             ("27:30.51", 4.29, {"UH3", "UH2", "UH1", "UH4"})]


@pytest.fixture(scope="module")
def uh(obspy_data: Path) -> Stream:
    """The raw UH recordings (counts), UH1..UH4."""
    st = Stream()
    for name in UH_FILES:
        st += read(str(obspy_data / name))
    return st


# --------------------------------------------------------------------------- helpers


def chunked(traces: list[Trace], sizes) -> list[tuple[str, np.ndarray, UTCDateTime, float]]:
    """Every trace cut into chunks (sizes: an int or a sequence cycled, each trace starting
    at a different place in it), all channels interleaved in time order, as a station
    delivers them."""
    seq = [sizes] if isinstance(sizes, int) else list(sizes)
    out = []
    for k, tr in enumerate(traces):
        fs = tr.stats.sampling_rate
        cyc = itertools.cycle(seq[k % len(seq):] + seq[:k % len(seq)])
        i = 0
        while i < tr.stats.npts:
            n = next(cyc)
            out.append((tr.stats.starttime + i / fs, tr.id, tr.data[i:i + n], fs))
            i += n
    out.sort(key=lambda c: (c[0], c[1]))
    return [(sid, data, t, fs) for t, sid, data, fs in out]


def run(cfg: TriggerConfig, traces: list[Trace], sizes=37) -> list[Transition]:
    trg = StreamingTrigger(cfg)
    out: list[Transition] = []
    for sid, data, t, fs in chunked(traces, sizes):
        got = trg.feed(sid, data, t, fs)
        assert all(isinstance(x, Transition) for x in got)
        out += got
    return out + trg.flush()


def ended(transitions: list[Transition], kind: str = "off") -> list[TriggerEvent]:
    return [t.event for t in transitions if t.kind == kind]


def stations(ev: TriggerEvent) -> set[str]:
    return {s.split(".")[1] for s in ev.channels}


def cut(traces, t1: str, t2: str) -> list[Trace]:
    """The traces with the data from t1 to t2 removed (two pieces each)."""
    out = []
    for tr in traces:
        out += [tr.slice(endtime=UTCDateTime(T0 + t1) - 1e-3), tr.slice(starttime=UTCDateTime(T0 + t2))]
    return out


def obspy_cft(tr: Trace, cfg: TriggerConfig) -> np.ndarray:
    """ObsPy on the whole trace: Trace.filter("bandpass") + the STA/LTA of Trace.trigger."""
    f = tr.copy()
    f.filter("bandpass", freqmin=cfg.freqmin, freqmax=cfg.freqmax, corners=cfg.corners)
    fs = f.stats.sampling_rate
    fn = recursive_sta_lta if cfg.method == "recstalta" else classic_sta_lta
    return fn(f.data, int(cfg.sta_s * fs), int(cfg.lta_s * fs))


def expected_picks(cft: np.ndarray, cfg: TriggerConfig, fs: float) -> list[tuple[int, int]]:
    """trigger_onset of ObsPy's whole-trace cft, less the edge artifact the streaming trigger
    suppresses by design: a trigger must start after the ratio was below ``off`` after the
    warm-up (``warmup_s``, default ``lta_s``)."""
    nwarm = int(round((cfg.warmup_s if cfg.warmup_s is not None else cfg.lta_s) * fs))
    nwarm = max(nwarm, int(cfg.lta_s * fs))
    below = np.flatnonzero(cft[nwarm:] < cfg.off)
    arm = nwarm + int(below[0]) if below.size else len(cft)
    picks = trigger_onset(cft, cfg.on, cfg.off, max_len=int(cfg.max_duration_s * fs + 0.5))
    return [(int(a), int(b)) for a, b in picks if a > arm]


def samples(events: list[TriggerEvent], tr: Trace) -> list[tuple[int, int]]:
    fs, t0 = tr.stats.sampling_rate, tr.stats.starttime
    return [(round((e.trigger_on - t0) * fs), round((e.trigger_off - t0) * fs)) for e in events]


def single(**kw) -> TriggerConfig:
    """One channel on its own (coincidence 1) with the UH filter and STA/LTA."""
    return TriggerConfig(**{**UH, "coincidence_sum": 1.0, **kw})


# --------------------------------------------------------------------------- coincidence


@pytest.mark.parametrize("sizes", [1, 7, 50, 199, (13, 1, 101, 37, 250, 3)],
                         ids=["1", "7", "50", "199", "mixed"])
def test_uh_coincidence_equals_obspy(uh: Stream, sizes) -> None:
    """THE key test: ObsPy's coincidence_trigger on the whole traces and the streaming
    trigger on chunks find the same three events."""
    st = uh.copy()
    st.filter("bandpass", freqmin=10, freqmax=20)
    ref = coincidence_trigger("recstalta", 3.5, 1, st, 3, sta=0.5, lta=10)
    # ObsPy still gives what its own test asserts
    assert len(ref) == len(UH_EVENTS)
    for r, (t, d, s) in zip(ref, UH_EVENTS):
        assert abs(r["time"] - UTCDateTime(T0 + t)) < 1e-3
        assert (round(r["duration"], 2), set(r["stations"])) == (d, s)

    out = run(TriggerConfig(**UH), list(uh), sizes)
    assert [t.kind for t in out] == ["on", "off"] * 3
    got = ended(out)
    for ev, r in zip(got, ref):
        assert abs(ev.trigger_on - r["time"]) <= 0.01 + 1e-6  # one sample (of UH4, 100 Hz)
        assert abs(ev.duration - r["duration"]) <= 0.02 + 1e-6
        assert stations(ev) == set(r["stations"])
        assert ev.closed_by == "off" and ev.coincidence_sum == r["coincidence_sum"]
        assert ev.cft_peak > 3.5
    # the early alert: "on" as soon as three channels are on, with the first one's time
    ons = [t.event for t in out if t.kind == "on"]
    assert [o.trigger_on for o in ons] == [e.trigger_on for e in got]
    assert [len(o.channels) for o in ons] == [3, 3, 3] and all(o.trigger_off is None for o in ons)


def test_chunk_sizes_give_identical_transitions(uh: Stream) -> None:
    def key(out):
        return [(t.kind, t.event.trigger_on, t.event.trigger_off, t.event.channels,
                 round(t.event.cft_peak, 9)) for t in out]

    cfg = TriggerConfig(**{**UH, "coincidence_sum": 1.0})  # every channel trigger counts
    a = run(cfg, list(uh), 64)
    assert len(a) > 10
    assert key(run(cfg, list(uh), (5, 401, 17))) == key(a)


def test_weights_by_channel_code_and_seed_id(uh: Stream) -> None:
    st = uh.copy()
    st.filter("bandpass", freqmin=10, freqmax=20)
    # UH4 (EHZ) weighs 3: it alone is a coincidence, as in ObsPy with trace_ids weights
    ids = {tr.id: (3.0 if tr.stats.channel == "EHZ" else 1.0) for tr in st}
    ref = coincidence_trigger("recstalta", 3.5, 1, st, 3, trace_ids=ids, sta=0.5, lta=10)
    got = ended(run(TriggerConfig(**{**UH, "weights": {"EHZ": 3.0}}), list(uh), 50))
    assert len(got) == len(ref) == 4
    for ev, r in zip(got, ref):
        assert abs(ev.trigger_on - r["time"]) <= 0.01 + 1e-6
        assert abs(ev.duration - r["duration"]) <= 0.02 + 1e-6
        assert stations(ev) == set(r["stations"])
    assert stations(got[1]) == {"UH4"} and got[1].coincidence_sum == 3.0

    # weight 0 by SEED id: UH4 is left out; the events are those of UH1-UH3 alone
    ref3 = coincidence_trigger("recstalta", 3.5, 1, st[:3], 3, sta=0.5, lta=10)
    got3 = ended(run(TriggerConfig(**{**UH, "weights": {"BW.UH4..EHZ": 0.0}}), list(uh), 50))
    assert [(e.trigger_on, round(e.duration, 2), stations(e)) for e in got3] == \
        [(r["time"], round(r["duration"], 2), set(r["stations"])) for r in ref3]
    assert all("BW.UH4..EHZ" not in e.channels for e in got3)


# --------------------------------------------------------------------------- cft and picks


@pytest.mark.parametrize("method", ["recstalta", "classicstalta"])
@pytest.mark.parametrize("index", [0, 3], ids=["UH1-50Hz", "UH4-100Hz"])
def test_cft_equals_obspy_on_the_whole_trace(uh: Stream, method: str, index: int) -> None:
    tr = uh[index]
    cfg = TriggerConfig(**{**UH, "method": method})
    fs = tr.stats.sampling_rate
    nsta, nlta = int(cfg.sta_s * fs), int(cfg.lta_s * fs)
    ref = obspy_cft(tr, cfg)
    zeros = nlta if method == "recstalta" else nlta - 1  # as ObsPy's C code
    for size in (1, 7, 333, tr.stats.npts):
        s = StaLtaStream(method, nsta, nlta, bandpass_sos(cfg.freqmin, cfg.freqmax, fs, cfg.corners))
        got = np.concatenate([s.process(tr.data[i:i + size]) for i in range(0, tr.stats.npts, size)])
        assert got.shape == ref.shape
        assert np.all(got[:zeros] == 0.0) and np.all(ref[:zeros] == 0.0)
        # recursive: the same arithmetic as ObsPy's C loop (bit for bit in practice);
        # classic: ObsPy's C code itself, only the summation order may differ
        np.testing.assert_allclose(got[zeros:], ref[zeros:], rtol=1e-12 if method == "recstalta" else 1e-8)


def test_private_sosfilt_kernel_is_there_and_equals_the_public_fallback(uh: Stream, monkeypatch) -> None:
    """The trigger runs scipy's private in-place sosfilt kernel (the public function costs
    ~10x per 25-sample chunk: edge/trigger/bandpass.py). Fail loudly when scipy moves or
    changes it, and check that the public fallback gives the same characteristic function."""
    assert bandpass.PRIVATE_KERNEL, (
        "scipy.signal._sosfilt._sosfilt is gone: the trigger fell back to the public "
        "scipy.signal.sosfilt (correct, ~10x slower per chunk); re-measure bench/trigger_cost.py")
    tr = uh[0]
    cfg = TriggerConfig(**UH)
    fs = tr.stats.sampling_rate
    nsta, nlta = int(cfg.sta_s * fs), int(cfg.lta_s * fs)
    sos = bandpass_sos(cfg.freqmin, cfg.freqmax, fs, cfg.corners)

    def cft() -> np.ndarray:
        s = StaLtaStream("recstalta", nsta, nlta, sos)
        return np.concatenate([s.process(tr.data[i:i + 25]) for i in range(0, tr.stats.npts, 25)])

    fast = cft()
    monkeypatch.setattr(stalta, "sosfilt_kernel", bandpass.sosfilt_inplace)
    slow = cft()
    assert np.any(fast > cfg.on)  # the recording has events: the comparison is not of zeros
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("freqmax", [20.0, 30.0], ids=["band", "above-nyquist-highpass"])
def test_bandpass_equals_trace_filter(uh: Stream, freqmax: float) -> None:
    tr = uh[1]  # 50 Hz: 30 Hz is above Nyquist, ObsPy (and we) high-pass at freqmin
    ref = tr.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref.filter("bandpass", freqmin=2.0, freqmax=freqmax)
    assert bool(caught) == (freqmax > 25.0)  # ObsPy warns that it high-passes instead
    s = StaLtaStream("recstalta", 10, 100, bandpass_sos(2.0, freqmax, 50.0, 4))
    got = np.concatenate([s.filter(tr.data[i:i + 41]) for i in range(0, tr.stats.npts, 41)])
    np.testing.assert_allclose(got, ref.data, rtol=1e-12, atol=1e-9 * np.abs(ref.data).max())


@pytest.mark.parametrize("index", [0, 1, 2, 3])
@pytest.mark.parametrize("method", ["recstalta", "classicstalta"])
def test_on_off_samples_equal_trigger_onset(uh: Stream, index: int, method: str) -> None:
    tr = uh[index]
    cfg = single(method=method)
    fs = tr.stats.sampling_rate
    want = expected_picks(obspy_cft(tr, cfg), cfg, fs)
    out = run(cfg, [tr], 23)
    got = samples(ended(out), tr)
    assert got == want and len(want) >= 2
    assert all(t.kind != "cancel" for t in out)


def test_first_samples_after_warmup_do_not_trigger(uh: Stream) -> None:
    """UH1's ratio is 3.66 > on at its first valid sample (the LTA has seen 10 s only): ObsPy
    triggers there, at the edge of the data; the streaming trigger does not."""
    tr = uh[0]
    cfg = single()
    fs = tr.stats.sampling_rate
    nlta = int(cfg.lta_s * fs)
    picks = trigger_onset(obspy_cft(tr, cfg), cfg.on, cfg.off)
    assert picks[0][0] == nlta  # ObsPy: the edge artifact
    got = ended(run(cfg, [tr], 50))
    assert got and all(e.trigger_on - tr.stats.starttime > 20.0 for e in got)


def test_max_duration_cuts_as_trigger_onset_max_len(uh: Stream) -> None:
    tr = uh[1]  # UH2 has an 11.88 s trigger at 16:27:12.36
    cfg = single(max_duration_s=5.0)
    fs = tr.stats.sampling_rate
    want = expected_picks(obspy_cft(tr, cfg), cfg, fs)
    got = ended(run(cfg, [tr], 29))
    assert samples(got, tr) == want
    cutoff = [e for e in got if e.closed_by == "max_duration"]
    assert len(cutoff) == 1 and cutoff[0].duration == pytest.approx(5.0)
    assert abs(cutoff[0].trigger_on - UTCDateTime(T0 + "27:12.36")) < 1e-3
    # as in ObsPy, the ratio rose through `on` again after the cut: a new trigger
    assert any(0 < e.trigger_on - cutoff[0].trigger_off < 5 for e in got)


def test_max_duration_closes_a_coincidence_event(uh: Stream) -> None:
    out = run(TriggerConfig(**{**UH, "max_duration_s": 2.0}), list(uh), 50)
    got = ended(out)
    assert [e.closed_by for e in got] == ["max_duration", "max_duration", "max_duration"]
    assert all(e.duration == pytest.approx(2.0) for e in got)
    assert [abs(e.trigger_on - UTCDateTime(T0 + t)) < 0.011 for e, (t, _, _) in zip(got, UH_EVENTS)] == [True] * 3
    # the channels still on at the cut do not start a new event until they went off
    assert [t.kind for t in out] == ["on", "off"] * 3


# --------------------------------------------------------------------------- event rules


def test_min_duration_cancels_a_short_trigger(uh: Stream) -> None:
    tr = uh[1]  # UH2: 1.1 s at 16:24:24.74, then 2.28, 3.44, 11.88, 2.24 s
    out = run(single(min_duration_s=2.0), [tr], 31)
    kinds = [(t.kind, round(t.event.duration or 0, 2)) for t in out]
    assert kinds[:2] == [("on", 0), ("cancel", 1.1)]
    assert [d for k, d in kinds if k == "off"] == [2.28, 3.44, 11.88, 2.24]
    # the cancel names the event its "on" announced (the pipeline drops it by trigger_on)
    assert out[0].event.trigger_on == out[1].event.trigger_on
    assert abs(out[0].event.trigger_on - UTCDateTime(T0 + "24:24.74")) < 1e-3


@pytest.mark.parametrize("dead", [5.0, 10.0])
def test_dead_time_after_off(uh: Stream, dead: float) -> None:
    tr = uh[1]
    cfg = single(dead_time_s=dead)
    fs = tr.stats.sampling_rate
    want, last_off = [], -10 ** 9
    for a, b in expected_picks(obspy_cft(tr, single()), cfg, fs):
        if a >= last_off + dead * fs:
            want.append((a, b))
            last_off = b
    got = samples(ended(run(cfg, [tr], 40)), tr)
    assert got == want
    assert len(got) == (5 if dead == 5.0 else 3)


def reference_hold(cft: np.ndarray, on: float, off: float, start: int, nhold: int) -> list[tuple[int, int]]:
    """A sample-by-sample reference of the hold rule: on at the first sample >= on (after
    the ratio was below ``off`` at or after ``start``); off ``nhold`` samples after the last
    sample >= off that is followed by more than ``nhold`` samples below it."""
    picks, i, n = [], start, len(cft)
    while i < n and cft[i] >= off:
        i += 1
    state, first, last = "off", 0, 0
    for k in range(i + 1, n):
        if state == "off":
            if cft[k] >= on:
                state, first, last = "on", k, k
        elif cft[k] >= off:
            last = k
        elif k - last > nhold:
            picks.append((first, last + nhold))
            state = "off"
    return picks


def test_hold_keeps_the_trigger_on(uh: Stream) -> None:
    tr = uh[1]
    fs = tr.stats.sampling_rate
    base = single(off=2.0)
    cft = obspy_cft(tr, base)
    nwarm = int(base.lta_s * fs)
    # the reference without hold is ObsPy's trigger_onset
    assert reference_hold(cft, 3.5, 2.0, nwarm, 0) == expected_picks(cft, base, fs)
    no_hold = samples(ended(run(base, [tr], 45)), tr)
    held = samples(ended(run(single(off=2.0, hold_s=1.0), [tr], 45)), tr)
    assert held == reference_hold(cft, 3.5, 2.0, nwarm, int(1.0 * fs))
    assert len(held) < len(no_hold)  # dips below `off` shorter than 1 s no longer split
    assert all(b - a >= 50 for a, b in held)  # every trigger lasts at least the hold


# --------------------------------------------------------------------------- gaps


def test_gap_in_quiet_data_restarts_and_warms_up(uh: Stream) -> None:
    pieces = cut(uh, "26:00", "26:40")
    st = Stream(pieces).copy()
    st.filter("bandpass", freqmin=10, freqmax=20)  # each piece from zero state, as we do
    ref = coincidence_trigger("recstalta", 3.5, 1, st, 3, sta=0.5, lta=10)
    got = ended(run(TriggerConfig(**UH), pieces, 41))
    assert [(e.trigger_on, round(e.duration, 2), stations(e)) for e in got] == \
        [(r["time"], round(r["duration"], 2), set(r["stations"])) for r in ref]
    # the state restarted: after the gap the LTA is young, the trigger earlier than without
    assert abs(got[1].trigger_on - UTCDateTime(T0 + "27:01.22")) < 1e-3


def test_gap_edge_never_triggers(uh: Stream) -> None:
    """Low thresholds: ObsPy, given the piece after the gap as a new Trace, triggers on its
    first valid sample (filter transient, young LTA); the streaming trigger restarts at the
    gap, warms up and triggers only where ObsPy does after the edge."""
    tr = uh[2]
    cfg = single(on=1.7, off=1.0)
    pieces = cut([tr], "26:00", "26:40")
    fs = tr.stats.sampling_rate
    nlta = int(cfg.lta_s * fs)
    after = obspy_cft(pieces[1], cfg)
    assert trigger_onset(after, cfg.on, cfg.off)[0][0] == nlta  # ObsPy: a trigger at the edge
    got = ended(run(cfg, pieces, 17))
    gap_end = pieces[1].stats.starttime
    assert not [e for e in got if gap_end <= e.trigger_on <= gap_end + cfg.lta_s + 0.5]
    # before and after the gap: ObsPy's picks on each piece (less their edges), exactly
    want = [(pieces[0].stats.starttime, p) for p in expected_picks(obspy_cft(pieces[0], cfg), cfg, fs)]
    want += [(gap_end, p) for p in expected_picks(after, cfg, fs)]
    assert len(want) >= 4
    assert [(round((e.trigger_on - t0) * fs), round((e.trigger_off - t0) * fs))
            for e, (t0, _) in zip(got, want)] == [p for _, p in want]


def test_warmup_s(uh: Stream) -> None:
    tr = uh[1]  # UH2 triggers at 21 s and 29.6 s after its start, then later
    cfg = single(warmup_s=40.0)
    fs = tr.stats.sampling_rate
    want = expected_picks(obspy_cft(tr, cfg), cfg, fs)
    got = samples(ended(run(cfg, [tr], 40)), tr)
    assert got == want and all(a >= 40 * fs for a, _ in got)
    assert len(expected_picks(obspy_cft(tr, single()), single(), fs)) == len(got) + 2


def test_event_on_at_a_gap_is_closed_by_gap(uh: Stream) -> None:
    pieces = cut(uh, "24:34.5", "24:50")
    st = Stream(pieces).copy()
    st.filter("bandpass", freqmin=10, freqmax=20)
    ref = coincidence_trigger("recstalta", 3.5, 1, st, 3, sta=0.5, lta=10)
    got = ended(run(TriggerConfig(**UH), pieces, 29))
    assert [(e.trigger_on, round(e.duration, 2), stations(e)) for e in got] == \
        [(r["time"], round(r["duration"], 2), set(r["stations"])) for r in ref]
    assert got[0].closed_by == "gap"
    assert got[0].trigger_off == max(p.stats.endtime for p in pieces[::2])  # the last sample
    assert [e.closed_by for e in got[1:]] == ["off"] * (len(got) - 1)


def test_duplicate_chunks_are_dropped(uh: Stream) -> None:
    tr = uh[3]
    items = chunked([tr], 100)
    trg, out = StreamingTrigger(single()), []
    for k, (sid, data, t, fs) in enumerate(items):
        out += trg.feed(sid, data, t, fs)
        if k % 5 == 2:  # the link re-sends this chunk, and a part of it
            out += trg.feed(sid, data, t, fs)
            out += trg.feed(sid, data[40:], t + 40 / fs, fs)
    out += trg.flush()
    assert [(t.kind, t.event.trigger_on) for t in out] == \
        [(t.kind, t.event.trigger_on) for t in run(single(), [tr], 100)]


# --------------------------------------------------------------------------- interface


def test_transition_interface_and_current_peak(uh: Stream) -> None:
    """What edge.station.pipeline.EventPipeline reads: kind, event.trigger_on/off, cft_peak,
    channels, closed_by, and the trigger's current_peak while an event is on."""
    trg = StreamingTrigger(TriggerConfig(**UH))
    assert trg.current_peak is None
    peaks, seen = [], []
    for sid, data, t, fs in chunked(list(uh), 25):
        for tr in trg.feed(sid, data, t, fs):
            seen.append(tr)
        if trg.current_peak is not None:
            peaks.append(trg.current_peak)
    assert [t.kind for t in seen] == ["on", "off"] * 3
    on, off = seen[0].event, seen[1].event
    assert isinstance(on.trigger_on, UTCDateTime) and on.trigger_off is None and on.closed_by is None
    assert isinstance(off.trigger_off, UTCDateTime) and off.closed_by == "off"
    assert isinstance(off.cft_peak, float) and off.cft_peak >= on.cft_peak > 3.5
    assert all(isinstance(c, str) for c in off.channels) and len(off.channels) == 4
    assert peaks and max(peaks) == pytest.approx(max(t.event.cft_peak for t in seen))
    assert seen[1].time == off.trigger_off and seen[0].time == on.trigger_on
    assert trg.current_peak is None


# --------------------------------------------------------------------------- configuration


def test_defaults_and_round_trip() -> None:
    cfg = TriggerConfig()
    assert (cfg.method, cfg.sta_s, cfg.lta_s, cfg.on, cfg.off, cfg.freqmin, cfg.freqmax,
            cfg.bands, cfg.corners, cfg.min_duration_s, cfg.max_duration_s, cfg.dead_time_s,
            cfg.hold_s, cfg.coincidence_sum, cfg.weights, cfg.warmup_s) == \
        ("recstalta", 0.2, 10.0, 5.0, 1.5, None, None, [], 4, 0.0, 120.0, 0.0, 0.0, 1.0, {}, None)
    # no band named: the station takes the bundle's; a lone trigger 1-20 Hz
    assert cfg.configured_bands() is None and cfg.bands_hz() == [(1.0, 20.0)]
    assert TriggerConfig(freqmin=10).bands_hz() == [(10.0, 20.0)]
    two = TriggerConfig.from_dict({"bands": [[1, 20], [20, 120]]})
    assert two.bands_hz() == [(1.0, 20.0), (20.0, 120.0)] and TriggerConfig.from_dict(two.to_dict()) == two
    full = TriggerConfig.from_dict({"method": "classicstalta", "sta_s": 1, "lta_s": 20,
                                    "weights": {"HHZ": 2, "XX.S1..HHN": 0.5}, "warmup_s": 30})
    assert full.sta_s == 1.0 and isinstance(full.sta_s, float) and full.weights == {"HHZ": 2.0, "XX.S1..HHN": 0.5}
    assert TriggerConfig.from_dict(full.to_dict()) == full
    assert TriggerConfig.from_dict(cfg.to_dict()) == cfg and "warmup_s" not in cfg.to_dict()
    assert full.weight("XX.S1..HHN") == 0.5 and full.weight("XX.S1..HHZ") == 2.0 and full.weight("XX.S1..HHE") == 1.0


BAD_CONFIG = [
    ({"sta_s": -1}, "sta_s: must be > 0, got -1"),
    ({"sta_s": 0}, "sta_s: must be > 0, got 0"),
    ({"lta_s": 0.1}, "lta_s: must be > sta_s = 0.2, got 0.1"),
    ({"on": 1.0}, "on: must be > off = 1.5, got 1"),
    ({"off": 0}, "off: must be > 0, got 0"),
    ({"freqmin": 0}, "freqmin: must be > 0, got 0"),
    ({"freqmax": 0.5}, "freqmax: must be > freqmin = 1, got 0.5"),
    ({"freqmin": 30}, "freqmin: must be < freqmax = 20, got 30"),
    ({"bands": [[20, 10]]}, "bands[0]: must be [low, high] with 0 < low < high (Hz), got [20, 10]"),
    ({"bands": [[1, 20, 30]]}, "bands[0][2]: the band's STA window must be > 0 and < lta_s = 10, got 30"),
    ({"bands": [[1, 20, 0.1, 4]]}, "bands[0]: must have 2 to 3 items, got 4"),
    ({"bands": [[1, "x"]]}, "bands[0][1]: expected a number, got string \"x\""),
    ({"bands": 5}, "bands: expected an array of arrays of numbers, got integer 5"),
    ({"bands": [[1, 20]], "freqmin": 2}, "bands: set either bands or freqmin/freqmax, not both"),
    ({"corners": 0}, "corners: must be within [1, 20], got 0"),
    ({"corners": 4.0}, "corners: expected an integer, got float 4.0"),
    ({"corners": True}, "corners: expected an integer, got boolean true"),
    ({"sta_s": True}, "sta_s: expected a number, got boolean true"),
    ({"sta_s": "0.2"}, "sta_s: expected a number, got string \"0.2\""),
    ({"lta_s": float("nan")}, "lta_s: must be a finite number, got nan"),
    ({"max_duration_s": float("inf")}, "max_duration_s: must be a finite number, got inf"),
    ({"min_duration_s": -1}, "min_duration_s: must be >= 0, got -1"),
    ({"max_duration_s": 0}, "max_duration_s: must be > 0, got 0"),
    ({"min_duration_s": 5, "max_duration_s": 5}, "max_duration_s: must be > min_duration_s = 5, got 5"),
    ({"dead_time_s": -0.5}, "dead_time_s: must be >= 0, got -0.5"),
    ({"hold_s": -1}, "hold_s: must be >= 0, got -1"),
    ({"coincidence_sum": 0}, "coincidence_sum: must be > 0, got 0"),
    ({"weights": {"HHZ": -1}}, "weights.HHZ: must be >= 0, got -1"),
    ({"weights": {"HHZ": "x"}}, "weights.HHZ: expected a number, got string \"x\""),
    ({"weights": [1.0]}, "weights: expected a table of numbers, got an array"),
    ({"warmup_s": -2}, "warmup_s: must be >= 0, got -2"),
    ({"method": "zdetect"}, "method: must be one of \"recstalta\", \"classicstalta\", got \"zdetect\""),
    ({"method": 1}, "method: expected one of \"recstalta\", \"classicstalta\", got integer 1"),
    ({"sta": 0.3}, "sta: unknown key (did you mean sta_s?)"),
]


@pytest.mark.parametrize("d, message", BAD_CONFIG, ids=[m.split(",")[0] for _, m in BAD_CONFIG])
def test_bad_config_names_the_key(d: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        TriggerConfig.from_dict(d)
    assert str(err.value) == message


def test_every_problem_is_reported_and_direct_construction_is_checked() -> None:
    with pytest.raises(ValueError, match=r"^sta_s: must be > 0, got -1\noff: must be > 0, got 0$"):
        TriggerConfig.from_dict({"sta_s": -1, "off": 0})
    with pytest.raises(ValueError, match="^lta_s: "):
        StreamingTrigger(TriggerConfig(lta_s=0.1))
    with pytest.raises(ValueError, match="nsta = 0"):  # 0.2 s is no sample at 2 Hz
        StreamingTrigger(TriggerConfig(freqmin=0.1, freqmax=0.5)).feed(
            "XX.S1..HHZ", np.zeros(10, np.int32), UTCDateTime(0), 2.0)
