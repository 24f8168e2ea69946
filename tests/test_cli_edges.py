"""Edges of the commands an operator meets: a missing or unreadable replay file, speed 0 of
the virtual digitizer, ``evaluate`` without ``--model``, ``predict`` on components at rates
that cannot carry the model's band. Real files, real subprocesses, a real pty."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from tests.test_daemon import finish, scenario, start_daemon, write_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def test_run_with_a_missing_replay_file_is_one_line_exit_2(tmp_path):
    missing = tmp_path / "nope.mseed"
    cfg = write_config(tmp_path / "c.toml", tmp_path / "state", [missing], 1, mqtt=False)
    rc, _, err = finish(start_daemon(cfg))
    lines = err.strip().splitlines()
    assert rc == 2 and "Traceback" not in err, err
    assert str(missing) in lines[-1] and "[source] files" in lines[-1]


def test_run_with_an_unreadable_replay_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "garbage.mseed"
    bad.write_bytes(b"\x00not a waveform\x01" * 100)
    cfg = write_config(tmp_path / "c.toml", tmp_path / "state", [bad], 1, mqtt=False)
    rc, _, err = finish(start_daemon(cfg))
    assert rc == 2 and "Traceback" not in err, err
    assert str(bad) in err.strip().splitlines()[-1]


def test_daemon_simulate_speed_0_is_not_real_time(tmp_path, scenario):
    """180 s of data through the virtual digitizer at speed 0 (no pacing): done long before
    180 s -- real time would not finish within the timeout."""
    cfg = write_config(tmp_path / "c.toml", tmp_path / "state", [scenario], 1, mqtt=False)
    text = cfg.read_text().replace('kind = "replay"', 'kind = "simulate"')
    cfg.write_text(text)
    t0 = time.monotonic()
    rc, _, err = finish(start_daemon(cfg), timeout=150)
    assert rc == 0, err[-3000:]
    assert time.monotonic() - t0 < 150


def test_simulate_speed_0_goes_as_fast_as_the_reader_and_says_so():
    proc = subprocess.Popen([sys.executable, "-m", "edge", "simulate", "--speed", "0", "--duration", "60",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = proc.stdout.readline()
        assert first.startswith("virtual digitizer on "), first
        pty = first.split()[3]
        got = bytearray()

        def read() -> None:  # the reader: take everything as it comes
            fd = os.open(pty, os.O_RDONLY | os.O_NOCTTY)
            try:
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    got.extend(chunk)
            finally:
                os.close(fd)

        threading.Thread(target=read, daemon=True).start()
        out, err = proc.communicate(timeout=50)  # 60 s of stream: real time would not make it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["stream_time_s"] >= 60 and stats["samples_written"] >= 60 * 250
    assert "no pacing" in err and len(got) > 0


def test_evaluate_defaults_to_the_shipped_bundle(tmp_path):
    from edge.model.format import DEFAULT_BUNDLE
    from trainer.synth import SynthConfig, generate_dataset

    data = tmp_path / "ds"
    generate_dataset(SynthConfig(n_events=8, seed=5, balance="equal"), data)
    res = cli("evaluate", "--data", str(data), "--out", str(tmp_path / "o"), "--gradcam", "0",
              "--no-cache", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert m["model"]["kind"] == "bundle" and Path(m["model"]["path"]) == DEFAULT_BUNDLE
    assert m["n"] == 8 and (tmp_path / "o" / "metrics.json").is_file()


def test_predict_refuses_components_at_a_rate_below_the_model_band(tmp_path):
    t0 = UTCDateTime(2024, 1, 1)
    rng = np.random.default_rng(0)
    st = Stream([Trace(rng.normal(0, 100, int(sr * 60)).astype(np.int32),
                       header={"network": "XX", "station": "A", "channel": ch, "sampling_rate": sr,
                               "starttime": t0})
                 for ch, sr in (("HHZ", 250.0), ("HHN", 10000.0), ("HHE", 1.0))])
    path = tmp_path / "mixed.mseed"
    st.write(str(path), format="MSEED")
    out = tmp_path / "p.csv"
    res = cli("predict", str(path), "--out", str(out))
    assert res.returncode == 1 and "Traceback" not in res.stderr  # 1: no event classified
    row = next(csv.DictReader(out.open()))
    assert row["class"] == ""
    note = row["note"]
    for part in ("XX.A..HHE 1 Hz", "XX.A..HHN 10000 Hz", "XX.A..HHZ 250 Hz", "too low"):
        assert part in note, note


def test_cli_loads_only_the_named_subcommand() -> None:
    """``microseis run`` builds a parser with the run plug-in alone (the workstation
    commands' modules stay unimported); without a known command every plug-in is there."""
    from edge.cli import build_parser

    def commands(parser) -> set[str]:
        sub = next(a for a in parser._actions if a.dest == "command")
        return set(sub.choices)

    assert commands(build_parser(["--log-level", "WARNING", "run", "--config", "x.toml"])) == {"run"}
    everything = commands(build_parser(["--help"]))
    assert {"run", "bench", "replay", "listen"} <= everything
    assert commands(build_parser(["no-such-command"])) == everything
