"""The digitizer link end to end over a real pseudo-terminal and pyserial.

A virtual digitizer replays a real recording (BW.UH3, 3 components of integer counts) on a
pty; :class:`SerialReader` reads it like a USB serial device. Every delivered sample must be
the recording's own sample at that time: no fake samples, whatever the faults.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from obspy import read

from firmware_bridge.decoder import FrameDecoder
from firmware_bridge.faults import FaultSpec
from firmware_bridge.protocol import SampleBlock, StreamConfig
from firmware_bridge.serial_reader import LinkEvent, SerialReader, SerialSettings
from firmware_bridge.simulator import SimulatorConfig, VirtualDigitizer
from firmware_bridge.sources import source_from_stream
from tests.util import wait_stable

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux ptys")


@pytest.fixture(scope="module")
def uh3(obspy_data):
    return read(str(obspy_data / "BW.UH3._.SH?.D.2010.147.cut.slist.gz"))


def settings(path: str, **kw) -> SerialSettings:
    base = dict(port=path, read_timeout_s=0.05, retry_initial_s=0.05, retry_max_s=0.2)
    base.update(kw)
    return SerialSettings(**base)


def position(block: SampleBlock, source) -> int:
    """Index in the source of a block's first sample, from its time stamp."""
    return round((block.t0_ns - source.start_ns) * block.rate_mhz / 1e12)


def assert_exact(blocks: list[SampleBlock], source) -> int:
    """Every block's samples equal the source's samples at the block's time; returns count."""
    n = 0
    for b in blocks:
        pos = position(b, source)
        np.testing.assert_array_equal(b.data.T, source.data[pos:pos + b.nsamp])
        n += b.nsamp
    return n


def stop_when_drained(sim: VirtualDigitizer, reader: SerialReader) -> None:
    """Stop the reader once the simulator has sent everything and the reader, connected to the
    simulator's current pty (after every unplug), has read every byte of it."""
    def drained() -> bool:
        return (reader.stats.connects > sim.stats.unplugs and sim.port.is_open
                and sim.port.pending_input() == 0)

    def watch():
        sim.finished.wait(60)
        wait_stable(drained, timeout=30)
        reader.stop()
    threading.Thread(target=watch, daemon=True).start()


def collect(reader: SerialReader, until=lambda blocks, events: False, duration_s: float = 30.0):
    blocks, events = [], []
    for item in reader.items(duration_s=duration_s):
        if isinstance(item, SampleBlock):
            blocks.append(item)
        elif isinstance(item, LinkEvent):
            events.append(item)
        if until(blocks, events):
            reader.stop()
    return blocks, events


def test_real_recording_arrives_intact_over_pty(uh3, tmp_path):
    source = source_from_stream(uh3)
    assert source.scale == 1.0 and source.channel_codes == ("SHZ", "SHN", "SHE")
    sim = VirtualDigitizer(source, SimulatorConfig(speed=0, frame_samples=25),
                           link=str(tmp_path / "digitizer"))
    decoder = FrameDecoder(StreamConfig("BW", "UH3", "", ("SHZ", "SHN", "SHE")))
    reader = SerialReader(settings(sim.path), decoder)
    expected_frames = source.data.shape[0] // 25

    def done(blocks, _):
        return len(blocks) >= expected_frames

    sim_started = threading.Timer(0.3, sim.start)  # reader opens first: nothing flushed away
    sim_started.start()
    try:
        blocks, events = collect(reader, done)
    finally:
        sim.stop()
    assert events[0].kind == "connected"
    assert len(blocks) == expected_frames
    assert assert_exact(blocks, source) == expected_frames * 25
    st = decoder.stats
    assert (st.gaps, st.lost_frames, st.crc_errors, st.skipped_bytes, st.segments) == (0, 0, 0, 0, 1)
    # ObsPy view of the first block: real ids, rate and time
    tr = blocks[0].to_stream().select(channel="SHZ")[0]
    assert tr.id == "BW.UH3..SHZ" and tr.stats.sampling_rate == 50.0
    assert abs(tr.stats.starttime - uh3.select(channel="SHZ")[0].stats.starttime) < 1e-5


def test_faults_never_produce_a_fake_sample(uh3, tmp_path):
    source = source_from_stream(uh3)
    faults = FaultSpec.parse("garbage=0.1,bitflip=0.05,drop=0.05,truncate=0.03,restart=60,wrap,"
                             "pps-loss=20:30,seed=3")
    sim = VirtualDigitizer(source, SimulatorConfig(speed=0, faults=faults),
                           link=str(tmp_path / "digitizer"))
    decoder = FrameDecoder()
    reader = SerialReader(settings(sim.path), decoder)
    threading.Timer(0.3, sim.start).start()
    stop_when_drained(sim, reader)
    try:
        blocks, _ = collect(reader)
    finally:
        sim.stop()
    st, ss = decoder.stats, sim.stats
    assert ss.dropped and ss.bitflips and ss.truncated and ss.garbage_bursts
    # every sample that was delivered is the recording's own sample
    delivered = assert_exact(blocks, source)
    assert 0 < delivered < source.data.shape[0]
    assert st.crc_errors + st.header_errors > 0
    assert st.restarts == ss.restarts == 1
    assert st.seq_resets == 1  # the restart, not the wrap
    # every frame the simulator damaged or dropped went missing from the sample stream
    damaged = ss.dropped + ss.bitflips + ss.truncated
    assert st.sample_frames >= ss.frames_built - damaged - 2
    assert st.gaps >= 1
    pps_off = [b for b in blocks if not b.pps_locked]
    assert pps_off and all(b.time_quality < 100 for b in pps_off)


def test_unplug_replug_resumes_and_reports_gap(uh3, tmp_path):
    source = source_from_stream(uh3)
    link = str(tmp_path / "digitizer")
    sim = VirtualDigitizer(source, SimulatorConfig(speed=20, faults=FaultSpec.parse("unplug=2:2"),
                                                   duration_s=12), link=link)
    decoder = FrameDecoder()
    reader = SerialReader(settings(link), decoder)
    sim.start()
    stop_when_drained(sim, reader)
    try:
        blocks, events = collect(reader, duration_s=20)
    finally:
        sim.stop()
    kinds = [e.kind for e in events]
    assert kinds[0] == "connected" and "disconnected" in kinds
    assert kinds.count("connected") >= 2, kinds
    assert reader.stats.disconnects >= 1 and reader.stats.outages
    after = [b for b in blocks if b.segment_reason == "gap"]
    assert len(after) == 1 and decoder.stats.gaps == 1
    gap_s = after[0].gap_samples / 50.0
    assert 2.0 <= gap_s < 8.0
    assert assert_exact(blocks, source) > 0  # data after the replug is the real data


def test_missing_port_is_reported_with_path_and_os_error_then_retried(tmp_path):
    path = str(tmp_path / "nope")
    reader = SerialReader(settings(path))
    events = []
    for item in reader.items(duration_s=0.5):
        events.append(item)
    assert len(events) >= 2 and all(e.kind == "open_failed" for e in events)
    assert path in events[0].message and "No such file or directory" in events[0].message
    assert reader.stats.open_failures == len(events)


def test_port_that_appears_later_is_picked_up(tmp_path):
    from firmware_bridge.sources import NoiseSource

    link = str(tmp_path / "later")
    reader = SerialReader(settings(link), FrameDecoder())
    sims = []
    later = threading.Timer(0.4, lambda: sims.append(VirtualDigitizer(
        NoiseSource(seed=1), SimulatorConfig(speed=5), link=link).start()))
    later.start()
    try:
        blocks, events = collect(reader, lambda b, e: len(b) >= 5, duration_s=10)
    finally:
        later.join()  # the digitizer has appeared (or the timer was never due): stop it
        for s in sims:
            s.stop()
    assert events[0].kind == "open_failed" and any(e.kind == "connected" for e in events)
    assert len(blocks) >= 5


def test_busy_port_gets_a_clear_message(tmp_path):
    from firmware_bridge.sources import NoiseSource

    sim = VirtualDigitizer(NoiseSource(), SimulatorConfig(speed=1), link=str(tmp_path / "d"))
    first = SerialReader(settings(sim.path))
    gen = first.items(duration_s=5)
    assert next(gen).kind == "connected"  # holds the port
    try:
        events = list(SerialReader(settings(sim.path)).items(duration_s=0.3))
        assert events and events[0].kind == "open_failed"
        assert "busy" in events[0].message and sim.path in events[0].message
    finally:
        gen.close()
        sim.stop()


def run_cli(*args, timeout=60, **kw):
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_link_cli_json_summary_with_simulator():
    out = run_cli("link", "--simulate", "--speed", "4", "--duration", "3", "--json",
                  "--faults", "garbage=0.05,drop=0.05,seed=2")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("frames", "samples", "crc_errors", "header_errors", "skipped_bytes",
                "lost_frames", "gaps", "segments"):
        assert isinstance(summary[key], int), key
    assert summary["frames"] > 0 and summary["samples"] > 0 and summary["skipped_bytes"] > 0
    assert set(summary["channels"]) == {"XX.S1..HHZ", "XX.S1..HHN", "XX.S1..HHE"}
    assert summary["channels"]["XX.S1..HHZ"]["time_quality"] == 100


def test_simulate_and_link_as_separate_processes(uh3, tmp_path, obspy_data):
    link = str(tmp_path / "digitizer")
    files = sorted(str(p) for p in obspy_data.glob("BW.UH3._.SH?.D.2010.147.cut.slist.gz"))
    sim = subprocess.Popen([sys.executable, "-m", "edge", "simulate", "--source", *files,
                            "--speed", "10", "--link", link, "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = sim.stdout.readline()
        assert "virtual digitizer on /dev/pts/" in first
        out = run_cli("link", "--port", link, "--duration", "3", "--json",
                      "--station", "BW.UH3", "--channels", "SHZ,SHN,SHE")
    finally:
        sim.terminate()
        sim.wait(10)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["frames"] > 10 and summary["crc_errors"] == 0
    assert summary["first_sample_time"].startswith("2010-05-27T16:2")
    assert "BW.UH3..SHZ" in summary["channels"]


def test_link_cli_without_frames_fails_with_reason(tmp_path):
    out = run_cli("link", "--port", str(tmp_path / "absent"), "--duration", "1")
    assert out.returncode == 1
    assert "no frames received" in out.stderr and "No such file or directory" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["link"], "--port PATH is required"),
    (["link", "--simulate", "--faults", "bogus=1"], "bad fault 'bogus=1'"),
    (["link", "--simulate", "--faults", "drop=2"], "within 0..1"),
    (["link", "--simulate", "--station", "nodot"], "NET.STA"),
    (["simulate", "--source", "/no/such/file.mseed"], "cannot read waveform file /no/such/file.mseed"),
])
def test_cli_bad_input_one_line_reason(args, message):
    out = run_cli(*args, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
