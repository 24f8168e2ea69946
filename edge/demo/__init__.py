"""The waveform scenario that ``microseis demo`` replays through a virtual digitizer.

``scenario.mseed``: one continuous 3-component recording (``XX.DEMO..HH{Z,N,E}``, 250 Hz,
int32 counts, STEIM2) with one event of each class (fracture, rockfall, earthquake, noise
transient; synthetic, from ``microseis synth --seed 11``) and one real local earthquake
(ObsPy's test recording ``loc_RJOB20050801145719850``), on synthetic background noise.
``scenario.json`` lists the events (class, expected trigger time, magnitude, source), the
station sensitivity (counts per m/s) and how the file was made. ``stations.xml`` is the
synthetic station's response (StationXML) under the code ``XX.DEMO..HH?``, so ML can be
computed from it. Regenerate all three with ``python bench/make_demo_scenario.py``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["reference_triggers", "load_scenario", "scenario_path", "stations_path", "metadata_path"]

_HERE = Path(__file__).resolve().parent

#: The trigger the scenario is checked against (ObsPy, whole file): per-component Butterworth
#: band-pass (Hz, causal), recursive STA/LTA windows (s), on/off ratios, coincidence sum.
REFERENCE_TRIGGER: dict[str, float] = {
    "freqmin": 1.0, "freqmax": 20.0, "corners": 4, "sta_s": 0.2, "lta_s": 10.0,
    "on": 5.0, "off": 1.5, "coincidence_sum": 2,
}


def scenario_path() -> Path:
    """Path of the shipped ``scenario.mseed`` (MiniSEED, STEIM2, int32 counts)."""
    return _HERE / "scenario.mseed"


def metadata_path() -> Path:
    """Path of the shipped ``scenario.json`` (event list and station metadata)."""
    return _HERE / "scenario.json"


def stations_path() -> Path:
    """Path of the shipped ``stations.xml`` (StationXML of ``XX.DEMO``, response in counts/(m/s))."""
    return _HERE / "stations.xml"


def load_scenario() -> tuple[Any, dict[str, Any]]:
    """``(stream, metadata)``: the scenario as an ``obspy.Stream`` (int32 counts, 250 Hz)
    and the parsed ``scenario.json`` (event times as ISO-8601 UTC strings, sensitivity in
    counts per m/s)."""
    import obspy

    st = obspy.read(str(scenario_path()), format="MSEED")
    meta = json.loads(metadata_path().read_text(encoding="utf-8"))
    return st, meta


def reference_triggers(st: Any, *, coincidence: bool = True) -> list[dict[str, Any]]:
    """Triggers of ObsPy's own (whole-file) STA/LTA on ``st`` with :data:`REFERENCE_TRIGGER`.

    Each trace is band-passed on a float copy (causal, as a station runs it). With
    ``coincidence`` the result is ObsPy's ``coincidence_trigger`` list (``time`` as
    ``UTCDateTime``, ``duration`` in s, ``stations``, ``coincidence_sum``); without it, the
    Z trace alone through ``recursive_sta_lta`` and ``trigger_onset`` (dicts with ``time``
    and ``duration``, s).
    """
    from obspy.signal.trigger import coincidence_trigger, recursive_sta_lta, trigger_onset

    p = REFERENCE_TRIGGER
    work = st.copy()
    for tr in work:
        tr.data = tr.data.astype("float64")
        tr.filter("bandpass", freqmin=p["freqmin"], freqmax=p["freqmax"],
                  corners=int(p["corners"]), zerophase=False)
    if coincidence:
        return coincidence_trigger("recstalta", p["on"], p["off"], work, p["coincidence_sum"],
                                   sta=p["sta_s"], lta=p["lta_s"])
    tr = work.select(component="Z")[0]
    fs = tr.stats.sampling_rate
    cft = recursive_sta_lta(tr.data, int(round(p["sta_s"] * fs)), int(round(p["lta_s"] * fs)))
    out = []
    for on, off in trigger_onset(cft, p["on"], p["off"]):
        out.append({"time": tr.stats.starttime + on / fs, "duration": (off - on) / fs})
    return out
