"""edge.station.archive: SDS day-files of raw counts (buffered, split at midnight, gaps), pruning by
age and disk fraction, event snippets; real files in tmp_path, read back with ObsPy."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime, read
from obspy.clients.filesystem.sds import Client

from edge.station.archive import SdsArchive, sds_path, to_counts

SR = 100.0


def _trace(start: UTCDateTime, n: int, cha: str = "HHZ", seed: int = 0, sr: float = SR) -> Trace:
    rng = np.random.default_rng(seed)
    data = np.cumsum(rng.integers(-5000, 5000, n)).astype(np.int32)
    return Trace(data=data, header={"network": "XX", "station": "S1", "location": "",
                                    "channel": cha, "sampling_rate": sr, "starttime": start})


def _chunks(tr: Trace, seconds: float) -> list[Trace]:
    """``tr`` cut into consecutive packets of ``seconds`` (as the daemon would write them)."""
    n = int(seconds * tr.stats.sampling_rate)
    out = []
    for i in range(0, tr.stats.npts, n):
        c = tr.copy()
        c.data = tr.data[i:i + n].copy()
        c.stats.starttime = tr.stats.starttime + i / tr.stats.sampling_rate
        out.append(c)
    return out


def test_sds_path_layout(tmp_path: Path) -> None:
    p = sds_path(tmp_path, "XX", "S1", "", "HHZ", UTCDateTime(2024, 2, 9, 12))
    assert p == tmp_path / "2024" / "XX" / "S1" / "HHZ.D" / "XX.S1..HHZ.D.2024.040"


def test_exact_samples_across_midnight_with_gap(tmp_path: Path) -> None:
    """Two segments on three channels, a gap between them, the second crossing midnight:
    the SDS client and obspy.read give back exactly the samples written."""
    t0 = UTCDateTime(2023, 12, 31, 23, 58, 0)
    seg1 = {c: _trace(t0, int(100 * SR), c, seed=i) for i, c in enumerate(("HHZ", "HHN", "HHE"))}
    t1 = t0 + 100 + 7.5  # 7.5 s gap; the segment runs 23:59:47.5 -> 00:02:47.5
    seg2 = {c: _trace(t1, int(180 * SR), c, seed=10 + i) for i, c in enumerate(("HHZ", "HHN", "HHE"))}
    arch = SdsArchive(tmp_path, flush_s=60.0)
    for seg in (seg1, seg2):
        packets = [_chunks(seg[c], 1.0) for c in seg]
        for group in zip(*packets):  # interleaved 1-s packets, as from the digitizer
            arch.write(Stream(list(group)))
    arch.close()

    day1 = tmp_path / "2023" / "XX" / "S1" / "HHZ.D" / "XX.S1..HHZ.D.2023.365"
    day2 = tmp_path / "2024" / "XX" / "S1" / "HHZ.D" / "XX.S1..HHZ.D.2024.001"
    assert day1.is_file() and day2.is_file()
    # the file of 1 January holds only samples of 1 January
    st2 = read(str(day2))
    assert min(tr.stats.starttime for tr in st2) == UTCDateTime(2024, 1, 1)
    st1 = read(str(day1))
    assert max(tr.stats.endtime for tr in st1) < UTCDateTime(2024, 1, 1)

    client = Client(str(tmp_path))
    for c in ("HHZ", "HHN", "HHE"):
        got = client.get_waveforms("XX", "S1", "", c, t0 - 10, t1 + 200)
        got.merge(method=-1)
        got.sort(keys=["starttime"])
        assert len(got) == 2, got  # the gap stays a gap
        for tr, want in zip(got, (seg1[c], seg2[c])):
            assert tr.data.dtype == np.int32
            np.testing.assert_array_equal(tr.data, want.data)
            assert abs(tr.stats.starttime - want.stats.starttime) < 1e-4
            assert tr.stats.sampling_rate == SR


def test_buffers_until_flush_s(tmp_path: Path) -> None:
    arch = SdsArchive(tmp_path, flush_s=60.0)
    tr = _trace(UTCDateTime(2024, 5, 1, 10), int(90 * SR))
    packets = _chunks(tr, 1.0)
    for p in packets[:59]:
        arch.write(Stream([p]))
    assert not any(tmp_path.rglob("*.D.*")), "nothing on disk before 60 s of data"
    arch.write(Stream([packets[59]]))
    files = [p for p in tmp_path.rglob("XX.S1..HHZ.D.*")]
    assert len(files) == 1
    assert read(str(files[0]))[0].stats.npts == int(60 * SR)
    for p in packets[60:]:
        arch.write(Stream([p]))
    assert arch.buffered_s == pytest.approx(30.0)
    arch.flush()
    assert arch.buffered_s == 0.0
    st = read(str(files[0]))
    st.merge(method=-1)
    assert len(st) == 1
    np.testing.assert_array_equal(st[0].data, tr.data)


def test_steim2_with_int32_fallback(tmp_path: Path) -> None:
    t0 = UTCDateTime(2024, 5, 1)
    smooth = _trace(t0, 1000)
    wild = Trace(np.array([0, 2**31 - 1, -2**31, 5] * 250, dtype=np.int32),
                 header={"network": "XX", "station": "S1", "channel": "HHN",
                         "sampling_rate": SR, "starttime": t0})
    with SdsArchive(tmp_path) as arch:
        arch.write(Stream([smooth, wild]))
    z = read(str(sds_path(tmp_path, "XX", "S1", "", "HHZ", t0)), details=True)
    n = read(str(sds_path(tmp_path, "XX", "S1", "", "HHN", t0)), details=True)
    assert z[0].stats.mseed.encoding == "STEIM2"
    assert n[0].stats.mseed.encoding == "INT32"
    np.testing.assert_array_equal(z[0].data, smooth.data)
    np.testing.assert_array_equal(n[0].data, wild.data)


def test_counts_only() -> None:
    assert to_counts(np.array([1.0, -3.0])).dtype == np.int32
    with pytest.raises(ValueError, match="integers"):
        to_counts(np.array([1.5]))
    with pytest.raises(ValueError, match="int32"):
        to_counts(np.array([2**40], dtype=np.int64))


def _day_file(root: Path, day: UTCDateTime, size: int = 1000, cha: str = "HHZ") -> Path:
    p = sds_path(root, "XX", "S1", "", cha, day)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\0" * size)
    return p


def test_prune_by_age(tmp_path: Path) -> None:
    now = UTCDateTime(2024, 3, 10, 12)
    files = {d: _day_file(tmp_path, now - d * 86400) for d in range(0, 40)}
    arch = SdsArchive(tmp_path, retention_days=30, max_disk_fraction=1.0)
    removed = arch.prune(now)
    assert sorted(removed) == sorted(files[d] for d in range(31, 40))
    assert all(files[d].exists() for d in range(0, 31))
    # a year folder emptied by pruning disappears
    assert not (tmp_path / "2024" / "XX" / "S1" / "HHZ.D" / "XX.S1..HHZ.D.2024.030").exists()


def test_prune_by_disk_fraction(tmp_path: Path) -> None:
    now = UTCDateTime(2024, 3, 10, 12)
    files = [_day_file(tmp_path, now - d * 86400, size=100) for d in range(10)]  # 1000 B

    def usage(_path):  # a 1200-byte disk holding only the archive
        used = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
        return (1200, used, 1200 - used)

    arch = SdsArchive(tmp_path, retention_days=0, max_disk_fraction=0.5, disk_usage=usage)
    removed = arch.prune(now)
    # oldest first, until 600 B or less are used: 4 files of 100 B go
    assert removed == files[9:5:-1]
    assert all(p.exists() for p in files[:6])


def test_prune_never_deletes_today(tmp_path: Path) -> None:
    now = UTCDateTime(2024, 3, 10, 12)
    today = _day_file(tmp_path, now, size=100)
    arch = SdsArchive(tmp_path, retention_days=1, max_disk_fraction=0.1,
                      disk_usage=lambda _p: (100, 99, 1))
    assert arch.prune(now) == []
    assert today.exists()


def test_snippet(tmp_path: Path) -> None:
    t0 = UTCDateTime(2025, 12, 31, 23, 59, 58)
    st = Stream([_trace(t0, 600, c, seed=i) for i, c in enumerate(("HHZ", "HHN", "HHE"))])
    meta = {"type": "end", "id": "XX.S1-20251231T235958.123Z", "class": "rockfall",
            "trigger_on": "2025-12-31T23:59:59.000000Z"}
    arch = SdsArchive(tmp_path)
    path = arch.write_snippet(meta["id"], st, meta)
    assert path == tmp_path / "events" / "2025" / f"{meta['id']}.mseed"
    back = read(str(path))
    back.sort()
    for tr in back:
        want = st.select(channel=tr.stats.channel)[0]
        np.testing.assert_array_equal(tr.data, want.data)
        assert tr.stats.starttime == want.stats.starttime
    assert json.loads(path.with_suffix(".json").read_text()) == meta
    with pytest.raises(ValueError, match="file name"):
        arch.write_snippet("../evil", st, meta)


def test_append_raw_chunks_reused_buffer_late_chunk_and_midnight(tmp_path: Path) -> None:
    """The station's path (:meth:`SdsArchive.append`: raw chunks, no Trace): the caller
    reuses one buffer for every chunk (the archive must keep its own copy), one chunk comes
    late (out of order) and the data cross midnight; the day-files hold exactly the samples."""
    tr = _trace(UTCDateTime(2024, 3, 1, 23, 59, 30), 6000)  # 60 s at 100 Hz, 30 s past midnight
    arc = SdsArchive(tmp_path, retention_days=0, max_disk_fraction=1.0, flush_s=1e9)
    buf = np.empty(250, dtype=np.int32)
    order = list(range(0, tr.stats.npts, 250))
    order[3], order[4] = order[4], order[3]  # a late chunk
    for i in order:
        n = min(250, tr.stats.npts - i)
        buf[:n] = tr.data[i:i + n]
        arc.append(tr.id, buf[:n], tr.stats.starttime + i / SR, SR)
        buf[:] = -1  # reused: must not reach the archive
    written = arc.flush()
    assert len(written) == 2  # two day-files
    got = Client(str(tmp_path)).get_waveforms("XX", "S1", "", "HHZ", tr.stats.starttime, tr.stats.endtime)
    got.merge()
    assert len(got) == 1 and got[0].stats.starttime == tr.stats.starttime
    np.testing.assert_array_equal(got[0].data, tr.data)
    with pytest.raises(ValueError, match="integers"):
        arc.append(tr.id, np.array([0.5, 1.0]), tr.stats.endtime, SR)
