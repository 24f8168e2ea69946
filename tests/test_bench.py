"""``microseis bench --quick``: the keys it promises with sane (positive) values, and
``--publish`` to a real broker (tests/broker.py), retained on ``{prefix}/{station}/bench``.
Speeds are reported, never asserted against targets here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.broker import Subscriber, broker  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def bench(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "bench", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def check_result(r: dict) -> None:
    assert r["benchmark"] == "microseis bench" and r["quick"] is True
    assert r["machine"]["cpu_model"] and r["machine"]["cpu_count"] >= 1
    for k in ("python", "numpy", "onnxruntime", "obspy", "microseis"):
        assert r["versions"][k], k
    model = r["model"]
    assert model["mc_passes"] >= 1 and model["rows"]
    ran = [row for row in model["rows"] if "skipped" not in row]
    assert any(row["default"] and row["precision"] == "int8" and row["runtime"] == "onnxruntime" for row in ran)
    for row in ran:
        assert 0 < row["batch1_p50_ms"] <= row["batch1_p99_ms"]
        assert 0 < row["mc_p50_ms"] <= row["mc_p99_ms"] and row["mc_batch"] == model["mc_passes"]
        assert row["runs"] >= 5
    assert r["trigger"]["s_per_hour"] > 0 and r["trigger"]["events"] >= 1  # RJOB's event triggers
    assert r["decoder"]["mb_per_s"] > 0 and r["decoder"]["msamples_per_s"] > 0
    start = r["cold_start"]
    assert start["exit_status"] == 0 and "error" not in start, start
    assert 0 < start["ready_s"] <= start["exit_s"] and start["peak_rss_mb"] > 20
    # the whole pipeline replayed (model included): far faster than real time, every burst an alert
    assert r["replay_rtf"] > 10 and r["replay"]["alerts"] == r["replay"]["events"] >= 1


def test_bench_quick_json(tmp_path):
    res = bench("--quick", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    check_result(json.loads(res.stdout.strip().splitlines()[-1]))


def test_bench_table_names_the_parts():
    res = bench("--quick")
    assert res.returncode == 0, res.stderr[-3000:]
    for word in ("machine", "model.int8.onnx", "trigger", "decoder", "READY=1", "peak RSS"):
        assert word in res.stdout, word


def test_bench_publish_retained_to_a_real_broker(broker, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[station]\nid = "XX.BEN"\nchannels = ["HHZ", "HHN", "HHE"]\n\n'
                   f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nprefix = "ms"\n')
    res = bench("--quick", "--json", "--publish", "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    printed = json.loads(res.stdout.strip().splitlines()[-1])
    # a subscriber that comes later gets it: retained
    with Subscriber.of(broker, "ms/XX.BEN/bench") as sub:
        assert sub.wait_for(lambda s: len(s.on("ms/XX.BEN/bench")) >= 1, 10)
        msg = sub.on("ms/XX.BEN/bench")[0]
    assert msg.retain and msg.json() == printed
    check_result(msg.json())


def test_bench_publish_errors_are_one_line_exit_2(tmp_path):
    res = bench("--quick", "--publish")
    assert res.returncode == 2 and "station id" in res.stderr and "Traceback" not in res.stderr
    res = bench("--quick", "--publish", "--station", "XX.A", "--host", "127.0.0.1", "--port", "1")
    assert res.returncode == 2 and "127.0.0.1:1" in res.stderr and "Traceback" not in res.stderr
    res = bench("--quick", "--model", str(tmp_path / "none.msb"))
    assert res.returncode == 2 and "none.msb" in res.stderr and "Traceback" not in res.stderr
