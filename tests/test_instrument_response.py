"""The model window in m/s whatever the sensor: the full StationXML response is removed
(edge/signal/instrument.py), where a flat sensitivity is wrong below a geophone's corner and
for an accelerometer, whose counts are acceleration."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import obspy
import pytest
from obspy import Stream, Trace, UTCDateTime

from edge.signal.dataset import response_for, sensitivity_for
from edge.signal.preprocess import preprocess_stream
from trainer.synth.continuous import SiteModel
from trainer.synth.sites import draw_site, site_inventory

T0 = UTCDateTime("2025-03-01T00:00:00Z")
FS = 250.0


def _site(instrument: str, tmp_path):
    """A site with ``instrument`` at 250 Hz, its StationXML written and read back."""
    base = draw_site(np.random.default_rng(3), "train", network="XT", station="A1")
    gain = 1.0 if instrument in ("broadband", "mems") else 8.0
    site = replace(base, instrument=instrument, preamp_gain=gain, sampling_rate=FS)
    path = tmp_path / f"{instrument}.xml"
    site_inventory([site], T0).write(str(path), format="STATIONXML")
    return site, obspy.read_inventory(str(path))


def _burst(freq: float, n: int, onset: int) -> np.ndarray:
    """Ground velocity (m/s), three components: a Hann-windowed 6-cycle burst at ``freq``."""
    m = int(round(6 * FS / freq))
    w = np.hanning(m) * np.sin(2 * np.pi * freq * np.arange(m) / FS) * 1e-5
    v = np.zeros((3, n))
    for c, a in enumerate((1.0, 0.7, 0.5)):
        v[c, onset:onset + m] = a * w
    return v


def _stream(site, data: np.ndarray) -> Stream:
    return Stream([Trace(np.ascontiguousarray(data[c]), header={
        "network": site.network, "station": site.station, "location": site.location,
        "channel": code, "sampling_rate": FS, "starttime": T0}) for c, code in enumerate(site.channel_codes())])


@pytest.mark.parametrize("instrument", ["geophone-4.5", "geophone-10", "broadband", "mems"])
@pytest.mark.parametrize("freq", [2.0, 8.0, 30.0])
def test_window_is_ground_velocity_for_every_instrument(instrument, freq, tmp_path):
    site, inv = _site(instrument, tmp_path)
    n, onset = int(60 * FS), int(30 * FS)
    v = _burst(freq, n, onset)
    counts = SiteModel(site).to_counts(v)[:, :n]  # what the generator's sensor records
    trigger = T0 + onset / FS
    st = _stream(site, counts)
    resp = {tr.id: response_for(inv, tr.id, trigger) for tr in st}
    w = preprocess_stream(st, trigger, response=resp)
    # reference: the ground velocity itself through the same window (no instrument at all)
    ref = preprocess_stream(_stream(site, v), trigger)
    assert w.units == "m/s"
    peak, peak_ref = float(np.max(np.abs(w.data))), float(np.max(np.abs(ref.data)))
    assert peak == pytest.approx(peak_ref, rel=0.05)
    assert abs(math.log10(peak) - math.log10(peak_ref)) < 0.02  # the model's amplitude input
    corr = np.corrcoef(w.data[0], ref.data[0])[0, 1]
    assert corr > 0.99


@pytest.mark.parametrize("instrument,freq,factor", [("mems", 8.0, 8.0), ("mems", 30.0, 30.0),
                                                     ("geophone-10", 2.0, 25.0)])
def test_a_flat_sensitivity_would_be_wrong_there(instrument, freq, factor, tmp_path):
    """Why the response is removed: the flat (velocity-equivalent) sensitivity of an
    accelerometer (quoted at 1 Hz) is off by f / 1 Hz, a 10 Hz geophone's (at 20 Hz) by about
    (f0 / f)^2 below its corner."""
    site, inv = _site(instrument, tmp_path)
    n, onset = int(60 * FS), int(30 * FS)
    v = _burst(freq, n, onset)
    trigger = T0 + onset / FS
    st = _stream(site, SiteModel(site).to_counts(v)[:, :n])
    flat = preprocess_stream(st, trigger, sensitivity={tr.id: sensitivity_for(inv, tr.id, trigger) for tr in st})
    ref = preprocess_stream(_stream(site, v), trigger)
    ratio = float(np.max(np.abs(flat.data)) / np.max(np.abs(ref.data)))
    off = ratio if ratio > 1 else 1.0 / ratio
    assert off > 0.5 * factor
