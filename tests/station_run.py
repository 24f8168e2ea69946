"""Run the station as ``microseis run`` builds it (edge.station.daemon.Daemon, replay source,
MQTT off) on a Stream, in this process, and collect its ``new``/``end`` messages."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from obspy import Stream

from edge.station.config import StationConfig
from edge.station.daemon import Daemon


class Collect:
    """The pipeline's publisher, recording every message before passing it on to the
    daemon's own (the offline publisher: log + durable outbox)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.new: list[dict[str, Any]] = []
        self.end: list[dict[str, Any]] = []
        #: the daemon's health payload at start
        self.health: dict[str, Any] = {}

    def event_new(self, msg: dict[str, Any]) -> None:
        self.new.append(msg)
        self.inner.event_new(msg)

    def event_end(self, msg: dict[str, Any]) -> None:
        self.end.append(msg)
        self.inner.event_end(msg)


def as_counts(st: Stream, network: str = "XX", station: str = "RJ", band: str = "HH") -> Stream:
    """The traces as int32 counts named ``NET.STA..{band}{Z,N,E}`` (last letter kept)."""
    out = st.copy()
    for tr in out:
        tr.stats.network, tr.stats.station, tr.stats.location = network, station, ""
        tr.stats.channel = band + tr.stats.channel[-1].upper()
        tr.data = np.round(np.asarray(tr.data, dtype=np.float64)).astype(np.int32)
    return out


def run_station(tmp: Path, st: Stream, sampling_rate: float, sections: dict | None = None
                ) -> tuple[Daemon, Collect]:
    """Write ``st`` (counts) to MiniSEED, replay it through the daemon at full speed."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "data.mseed"
    st.write(str(path), format="MSEED")
    ids = {tr.id for tr in st}
    net, sta = next(iter(ids)).split(".")[:2]
    chans = sorted({tr.stats.channel for tr in st}, key=lambda c: "ZNE12".find(c[-1]))
    doc: dict[str, Any] = {
        "station": {"id": f"{net}.{sta}", "channels": chans, "sampling_rate": sampling_rate},
        "source": {"kind": "replay", "files": [str(path)], "speed": 0.0},
        "magnitude": {"sensitivity": 1.0e9},
        "mqtt": {"enabled": False},
        "archive": {"enabled": False},
        "state": {"dir": str(tmp / "state")},
    }
    for name, values in (sections or {}).items():
        doc.setdefault(name, {}).update(values)
    daemon = Daemon(StationConfig.from_dict(doc), install_signals=False)
    col = Collect(daemon.pipeline.publisher)
    daemon.pipeline.publisher = col
    col.health = daemon.health_payload()
    assert daemon.run() == 0
    return daemon, col
