"""The frames of ``firmware_bridge/spec/vectors.json``: decoded exactly, re-encoded byte for byte.

``vectors.json`` is the contract between the firmware encoder and the host decoder
(``docs/spec/digitizer-frame.md``); every implementation must reproduce it bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, UTCDateTime

from firmware_bridge.decoder import FrameDecoder, decode_bytes
from firmware_bridge.encoder import (
    FrameEncoder,
    encode_frame,
    encode_samples_payload,
    encode_status_payload,
)
from firmware_bridge.protocol import (
    BYTES_PER_SAMPLE,
    HEADER_SIZE,
    TYPE_LOG,
    TYPE_SAMPLES,
    TYPE_STATUS,
    LogMessage,
    SampleBlock,
    StatusMessage,
    StreamConfig,
    crc16_ccitt_false,
    crc32_iso_hdlc,
)
from firmware_bridge.spec import load_vectors

VECTORS = load_vectors()
BY_TYPE = {t: [v for v in VECTORS if v["type"] == t] for t in (TYPE_SAMPLES, TYPE_STATUS, TYPE_LOG)}
SAMPLE_VECTORS = BY_TYPE[TYPE_SAMPLES]

STATION = StreamConfig(network="IV", station="SLP1", location="00",
                       channels=("EHZ", "EHN", "EHE"))


def _ids(vectors):
    return [v["name"] for v in vectors]


def _encode_vector(v: dict) -> bytes:
    """The frame of vector ``v`` as the Python encoder writes it."""
    p = v["payload"]
    if v["type"] == TYPE_SAMPLES:
        payload = encode_samples_payload(
            p["sample_index"], p["t0_ns"], p["rate_mhz"], np.array(p["samples"], dtype=np.int64),
            enc=p["enc"], time_flags=p["time_flags"], time_quality=p["time_quality"],
            status_flags=p["status_flags"])
    elif v["type"] == TYPE_STATUS:
        payload = encode_status_payload(p)
    else:
        payload = p.encode("utf-8")
    return encode_frame(v["type"], v["seq"], payload)


def _decode_one(v: dict, config: StreamConfig | None = None):
    messages, stats = decode_bytes(bytes.fromhex(v["hex"]), config)
    assert len(messages) == 1, messages
    assert stats.frames == 1
    for name in ("crc_errors", "header_errors", "malformed_frames", "skipped_bytes",
                 "truncated_frames", "lost_frames", "seq_resets", "gaps", "restarts"):
        assert getattr(stats, name) == 0, (name, stats)
    assert stats.bytes_in == len(v["hex"]) // 2
    return messages[0], stats


def test_the_vectors_cover_every_type_and_encoding():
    assert all(BY_TYPE.values())
    assert {v["payload"]["enc"] for v in SAMPLE_VECTORS} == set(BYTES_PER_SAMPLE)
    assert any(v["payload"]["t0_ns"] < 0 for v in SAMPLE_VECTORS)


def test_crc_check_values_of_the_spec():
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc32_iso_hdlc(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("v", VECTORS, ids=_ids(VECTORS))
def test_vector_frame_layout(v):
    """Length field, header CRC and CRC-32 of the stored bytes agree with the spec text."""
    frame = bytes.fromhex(v["hex"])
    assert frame[:2] == b"\xa5\x5a" and frame[2] == 1 and frame[3] == v["type"]
    length = int.from_bytes(frame[4:6], "little")
    assert len(frame) == HEADER_SIZE + length + 4
    assert int.from_bytes(frame[6:10], "little") == v["seq"]
    assert int.from_bytes(frame[10:12], "little") == crc16_ccitt_false(frame[2:10])
    assert int.from_bytes(frame[-4:], "little") == crc32_iso_hdlc(frame[2:-4])


@pytest.mark.parametrize("v", VECTORS, ids=_ids(VECTORS))
def test_python_encoder_reproduces_vector_bytes(v):
    assert _encode_vector(v).hex() == v["hex"]


@pytest.mark.parametrize("v", VECTORS, ids=_ids(VECTORS))
def test_stateful_encoder_reproduces_vector_bytes(v):
    enc = FrameEncoder(seq=v["seq"])
    p = v["payload"]
    if v["type"] == TYPE_SAMPLES:
        frame = enc.samples(p["sample_index"], p["t0_ns"], p["rate_mhz"], np.array(p["samples"]),
                            enc=p["enc"], time_flags=p["time_flags"],
                            time_quality=p["time_quality"], status_flags=p["status_flags"])
    elif v["type"] == TYPE_STATUS:
        frame = enc.status(p)
    else:
        frame = enc.log(p)
    assert frame.hex() == v["hex"]
    assert enc.seq == (v["seq"] + 1) % (1 << 32)


@pytest.mark.parametrize("v", SAMPLE_VECTORS, ids=_ids(SAMPLE_VECTORS))
def test_sample_vector_decodes_to_its_payload(v):
    block, stats = _decode_one(v)
    p = v["payload"]
    assert isinstance(block, SampleBlock)
    assert block.seq == v["seq"]
    assert block.sample_index == p["sample_index"]
    assert block.t0_ns == p["t0_ns"]
    assert block.rate_mhz == p["rate_mhz"]
    assert block.enc == p["enc"]
    assert (block.nch, block.nsamp) == (p["nch"], p["nsamp"])
    assert block.time_flags == p["time_flags"]
    assert block.time_quality == p["time_quality"]
    assert block.status_flags == p["status_flags"]
    # samples: one row per sample in the vector, one row per channel in the block
    assert block.data.dtype == np.int32
    assert block.data.shape == (p["nch"], p["nsamp"])
    np.testing.assert_array_equal(block.data, np.array(p["samples"], dtype=np.int64).T)
    assert block.sampling_rate == p["rate_mhz"] / 1000.0
    assert block.end_sample_index == p["sample_index"] + p["nsamp"]
    # the first frame of a stream begins segment 1
    assert (block.segment, block.segment_reason, block.gap_samples) == (1, "start", 0)
    assert stats.sample_frames == 1 and stats.samples == p["nsamp"] and stats.segments == 1


@pytest.mark.parametrize("v", SAMPLE_VECTORS, ids=_ids(SAMPLE_VECTORS))
def test_sample_vector_time_and_status_flags(v):
    block, _ = _decode_one(v)
    tf, sf = v["payload"]["time_flags"], v["payload"]["status_flags"]
    assert block.gnss_fix == bool(tf & 1)
    assert block.pps_locked == bool(tf & 2)
    assert block.time_from_host == bool(tf & 4)
    assert block.clipped == bool(sf & 1)
    assert block.overrun == bool(sf & 2)


def test_flag_meanings_of_the_named_vectors():
    by_name = {v["name"]: _decode_one(v)[0] for v in SAMPLE_VECTORS}
    gnss = by_name["int24_3ch_3samples"]
    assert gnss.gnss_fix and gnss.pps_locked and not gnss.time_from_host
    assert not gnss.clipped and not gnss.overrun
    holdover = by_name["int32_1ch_4samples_holdover_clip"]
    assert holdover.time_from_host and not holdover.gnss_fix and not holdover.pps_locked
    assert holdover.clipped and not holdover.overrun
    old = by_name["int16_2ch_2samples_pre1970"]
    assert old.overrun and not old.clipped and old.time_flags == 0


@pytest.mark.parametrize("v", SAMPLE_VECTORS, ids=_ids(SAMPLE_VECTORS))
def test_starttime_is_t0_ns_exactly(v):
    block, _ = _decode_one(v)
    t0_ns = v["payload"]["t0_ns"]
    start = block.starttime
    assert isinstance(start, UTCDateTime)
    assert start.ns == t0_ns
    assert start.timestamp == pytest.approx(t0_ns / 1e9, abs=1e-6)


def test_starttime_values_of_the_named_vectors():
    by_name = {v["name"]: _decode_one(v)[0] for v in SAMPLE_VECTORS}
    assert by_name["int24_3ch_3samples"].starttime == UTCDateTime("2026-01-01T00:00:00Z")
    t = by_name["int32_1ch_4samples_holdover_clip"].starttime
    assert t.ns == UTCDateTime("2026-01-01T00:00:00Z").ns + 123_456_789
    pre = by_name["int16_2ch_2samples_pre1970"].starttime
    assert pre.ns == -5  # 5 ns before the epoch, not rounded to 0 or wrapped to 2262
    assert pre.timestamp < 0


@pytest.mark.parametrize("t0_ns", [0, -1, -5, -1_000_000_000, -86_400 * 10**9 * 365 * 50 - 7,
                                   (1 << 62), 1767225600123456789])
def test_starttime_round_trip_through_the_wire(t0_ns):
    """Any i64 time, pre-1970 included, comes back as the same nanosecond."""
    frame = encode_frame(TYPE_SAMPLES, 0,
                         encode_samples_payload(0, t0_ns, 100_000, np.zeros((2, 1), np.int64)))
    (block,), _ = decode_bytes(frame)
    assert block.t0_ns == t0_ns
    assert block.starttime.ns == t0_ns


@pytest.mark.parametrize("v", BY_TYPE[TYPE_STATUS], ids=_ids(BY_TYPE[TYPE_STATUS]))
def test_status_vector_decodes_to_its_fields(v):
    msg, stats = _decode_one(v)
    assert isinstance(msg, StatusMessage)
    assert msg.seq == v["seq"]
    assert msg.fields == v["payload"]
    assert stats.status_frames == 1 and stats.sample_frames == 0 and stats.segments == 0


@pytest.mark.parametrize("v", BY_TYPE[TYPE_LOG], ids=_ids(BY_TYPE[TYPE_LOG]))
def test_log_vector_decodes_to_its_text(v):
    msg, stats = _decode_one(v)
    assert isinstance(msg, LogMessage)
    assert msg.seq == v["seq"]
    assert msg.text == v["payload"]
    assert stats.log_frames == 1 and stats.sample_frames == 0


def test_all_vectors_in_one_stream():
    """Back to back, each vector decodes to the same message; seq accounting follows rule 4."""
    stream = b"".join(bytes.fromhex(v["hex"]) for v in VECTORS)
    messages, stats = decode_bytes(stream)
    assert [m.seq for m in messages] == [v["seq"] for v in VECTORS]
    assert stats.frames == len(VECTORS)
    assert stats.skipped_bytes == stats.crc_errors == stats.header_errors == 0
    # 7 -> 4294967295 is a step backwards (a reset), 4294967295 -> 0 a wrap, 0 -> 8 loses 1..7
    seqs = [v["seq"] for v in VECTORS]
    assert seqs[:4] == [7, 4294967295, 0, 8]
    assert stats.seq_resets == 1
    assert stats.lost_frames == 7


@pytest.mark.parametrize("v", SAMPLE_VECTORS, ids=_ids(SAMPLE_VECTORS))
def test_to_stream_traces(v):
    p = v["payload"]
    decoder = FrameDecoder(STATION)
    (block,) = decoder.feed(bytes.fromhex(v["hex"]))
    assert block.config is STATION
    for st in (block.to_stream(), block.to_stream(STATION)):
        assert isinstance(st, Stream)
        assert len(st) == p["nch"]
        expected = np.array(p["samples"], dtype=np.int64).T
        for i, tr in enumerate(st):
            assert tr.id == f"IV.SLP1.00.{STATION.channels[i]}"
            assert tr.stats.sampling_rate == p["rate_mhz"] / 1000.0
            assert tr.stats.npts == p["nsamp"]
            assert tr.stats.starttime.ns == p["t0_ns"]
            assert tr.data.dtype == np.int32
            np.testing.assert_array_equal(tr.data, expected[i])


def test_to_stream_config_argument_wins_and_unnamed_channels():
    v = next(v for v in SAMPLE_VECTORS if v["payload"]["nch"] == 3)
    (block,) = FrameDecoder(STATION).feed(bytes.fromhex(v["hex"]))
    other = StreamConfig.from_strings("CH.LAND", "HHZ", location="10")
    st = block.to_stream(other)
    assert [tr.id for tr in st] == ["CH.LAND.10.HHZ", "CH.LAND.10.CH1", "CH.LAND.10.CH2"]
    # with no config at all, the protocol default names apply
    (bare,) = FrameDecoder().feed(bytes.fromhex(v["hex"]))
    assert [tr.id for tr in bare.to_stream()] == ["XX.S1..HHZ", "XX.S1..HHN", "XX.S1..HHE"]


def test_to_stream_end_time_follows_rate():
    v = next(v for v in SAMPLE_VECTORS if v["name"] == "int24_3ch_3samples")
    (block,) = FrameDecoder(STATION).feed(bytes.fromhex(v["hex"]))
    tr = block.to_stream()[0]
    # 3 samples at 250 Hz: the last one 8 ms after the first
    assert tr.stats.endtime - tr.stats.starttime == pytest.approx(0.008)
    assert block.delta == pytest.approx(0.004)
