"""One test per receiver rule of ``docs/spec/digitizer-frame.md`` and per bad input.

Corrupt frames are made from the encoder's helpers plus byte surgery; where a test needs a
frame whose CRCs are right but whose content is impossible, the CRCs are recomputed.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_bridge.decoder import DecoderStats, FrameDecoder, decode_bytes
from firmware_bridge.encoder import FrameEncoder, encode_frame, encode_samples_payload, encode_status_payload
from firmware_bridge.protocol import (
    ENC_INT16,
    ENC_INT24,
    ENC_INT32,
    HEADER_SIZE,
    MAX_PAYLOAD,
    SAMPLES_STRUCT,
    SEQ_MODULUS,
    SYNC,
    TYPE_LOG,
    TYPE_SAMPLES,
    TYPE_STATUS,
    LogMessage,
    SampleBlock,
    StatusMessage,
    crc16_ccitt_false,
    crc32_iso_hdlc,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
RATE = 100_000  # 100 Hz in mHz
NSAMP = 25
#: the most bytes a decoder may hold back after a feed: one frame of the longest payload, less 1
MAX_PENDING = HEADER_SIZE + MAX_PAYLOAD + 4 - 1


# -- frame builders -----------------------------------------------------------------------
def raw_frame(ftype: int, seq: int, payload: bytes, *, version: int = 1,
              length: int | None = None, hcrc: int | None = None, crc: int | None = None) -> bytes:
    """A frame with any header field forced; CRCs are recomputed unless given."""
    header = struct.pack("<BBHI", version, ftype, len(payload) if length is None else length,
                         seq % SEQ_MODULUS)
    hcrc = crc16_ccitt_false(header) if hcrc is None else hcrc
    body = header + hcrc.to_bytes(2, "little") + payload
    crc = crc32_iso_hdlc(body) if crc is None else crc
    return SYNC + body + crc.to_bytes(4, "little")


def counts(nsamp: int = NSAMP, nch: int = 3, offset: int = 0) -> np.ndarray:
    """Small deterministic counts (shape ``(nsamp, nch)``) whose bytes never contain a sync."""
    return (np.arange(nsamp * nch, dtype=np.int64).reshape(nsamp, nch) + offset) % 41 - 20


def samples(seq: int, index: int, *, nsamp: int = NSAMP, nch: int = 3, enc: int = ENC_INT24,
            rate: int = RATE, offset: int = 0) -> bytes:
    t0 = T0 + index * 10**12 // rate  # t0 of sample ``index`` at ``rate`` mHz
    payload = encode_samples_payload(index, t0, rate, counts(nsamp, nch, offset), enc=enc,
                                     time_flags=3, time_quality=100)
    return encode_frame(TYPE_SAMPLES, seq, payload)


def status(seq: int, **fields) -> bytes:
    return encode_frame(TYPE_STATUS, seq, encode_status_payload(fields or {"temp_c": 21.5}))


def log(seq: int, text: str = "PPS locked") -> bytes:
    return encode_frame(TYPE_LOG, seq, text.encode("utf-8"))


def samples_payload_raw(*, index: int = 0, rate: int = RATE, nch: int = 3, enc: int = ENC_INT24,
                        nsamp: int = NSAMP, data: bytes | None = None, bps: int = 3) -> bytes:
    """A type-1 payload with any field value; ``data`` defaults to the size the fields imply."""
    head = SAMPLES_STRUCT.pack(index, T0, rate, nch, enc, nsamp, 3, 100, 0, 0)
    return head + (bytes(nch * nsamp * bps) if data is None else data)


def flip(frame: bytes, byte: int, bit: int = 0) -> bytes:
    b = bytearray(frame)
    b[byte] ^= 1 << bit
    return bytes(b)


def only_sync_at_start(frame: bytes) -> bytes:
    """Guard: a dropped frame counts one header/CRC error only if it holds no other sync."""
    assert frame.find(SYNC, 1) < 0
    return frame


def summary(m):
    """A comparable, hashable view of one decoded message."""
    if isinstance(m, SampleBlock):
        return ("samples", m.seq, m.sample_index, m.t0_ns, m.rate_mhz, m.enc, m.time_flags,
                m.time_quality, m.status_flags, m.data.dtype.str, m.data.shape, m.data.tobytes(),
                m.segment, m.segment_reason, m.gap_samples)
    if isinstance(m, StatusMessage):
        return ("status", m.seq, repr(sorted(m.fields.items())))
    assert isinstance(m, LogMessage)
    return ("log", m.seq, m.text)


def decode(stream: bytes):
    messages, stats = decode_bytes(stream)
    return messages, stats


def feed_in_chunks(data: bytes, size: int):
    dec = FrameDecoder()
    out = []
    for i in range(0, len(data), size):
        out += dec.feed(data[i:i + size])
        assert dec.pending_bytes <= MAX_PENDING
        assert dec.stats.skipped_bytes + dec.pending_bytes <= dec.stats.bytes_in
    out += dec.flush()
    assert dec.pending_bytes == 0
    return out, dec.stats


def assert_only(stats: DecoderStats, **expected):
    """Every defect counter is 0 except those named."""
    for name in ("crc_errors", "header_errors", "malformed_frames", "skipped_bytes",
                 "truncated_frames", "lost_frames", "seq_resets", "gaps", "gap_samples",
                 "restarts"):
        assert getattr(stats, name) == expected.get(name, 0), (name, stats)


# -- clean stream -------------------------------------------------------------------------
def test_clean_stream_has_no_defects():
    frames = [samples(0, 0), status(1), samples(2, NSAMP), log(3), samples(4, 2 * NSAMP)]
    messages, stats = decode(b"".join(frames))
    assert [m.seq for m in messages] == [0, 1, 2, 3, 4]
    assert [type(m) for m in messages] == [SampleBlock, StatusMessage, SampleBlock, LogMessage,
                                           SampleBlock]
    assert (stats.frames, stats.sample_frames, stats.status_frames,
            stats.log_frames) == (5, 3, 1, 1)
    assert stats.samples == 3 * NSAMP and stats.segments == 1
    assert stats.bytes_in == sum(map(len, frames))
    assert_only(stats)
    blocks = [m for m in messages if isinstance(m, SampleBlock)]
    assert [(b.segment, b.segment_reason) for b in blocks] == [(1, "start"), (1, None), (1, None)]
    np.testing.assert_array_equal(blocks[1].data, counts().T)


# -- rule 1/3: scanning, garbage, header errors -------------------------------------------
GARBAGE = b"\x00\xff\x13\xa5\x00noise\xa5\xa5\x07\x5a\x5a\xa5\xa4"


def test_garbage_before_first_frame_is_skipped_and_counted():
    f = samples(0, 0)
    messages, stats = decode(GARBAGE + f)
    assert [summary(m) for m in messages] == [summary(m) for m in decode(f)[0]]
    assert_only(stats, skipped_bytes=len(GARBAGE))


def test_garbage_between_frames_is_skipped_and_counted():
    frames = [samples(0, 0), log(1), samples(2, NSAMP)]
    stream = GARBAGE + frames[0] + GARBAGE[:5] + frames[1] + GARBAGE + GARBAGE + frames[2] + b"\x01"
    messages, stats = decode(stream)
    assert [m.seq for m in messages] == [0, 1, 2]
    assert_only(stats, skipped_bytes=3 * len(GARBAGE) + 5 + 1)


def test_false_sync_inside_garbage_is_a_header_error():
    header = bytearray(b"\x01\x01\x10\x00\x09\x00\x00\x00")
    bad_hcrc = (crc16_ccitt_false(bytes(header)) ^ 0x0101).to_bytes(2, "little")
    garbage = b"junk" + SYNC + bytes(header) + bad_hcrc + b"more junk"
    f = samples(0, 0)
    messages, stats = decode(garbage + f)
    assert [m.seq for m in messages] == [0]
    assert_only(stats, header_errors=1, skipped_bytes=len(garbage))


def test_false_sync_right_before_a_frame():
    """``A5 5A A5 5A 01 ...``: the first pair reads the real sync as its version and fails."""
    f = samples(0, 0)
    messages, stats = decode(b"\x33" + SYNC + f)
    assert [m.seq for m in messages] == [0]
    assert_only(stats, header_errors=1, skipped_bytes=3)


def test_false_sync_with_valid_header_crc_and_bogus_length():
    """A false header that passes its CRC-16 fails the CRC-32; what it covered is rescanned."""
    fake = raw_frame(TYPE_LOG, 77, b"", length=200)[:HEADER_SIZE] + b"\x00\x01"
    frames = [samples(5, 0), log(6), samples(7, NSAMP)]
    messages, stats = decode(fake + b"".join(frames))
    assert [m.seq for m in messages] == [5, 6, 7]
    assert_only(stats, crc_errors=1, skipped_bytes=len(fake))


@pytest.mark.parametrize("version", [0, 2, 0xA5, 255])
def test_bad_version_is_a_header_error_and_next_frame_recovers(version):
    bad = only_sync_at_start(raw_frame(TYPE_LOG, 0, b"hello", version=version))
    messages, stats = decode(bad + log(1, "next"))
    assert [(m.seq, m.text) for m in messages] == [(1, "next")]
    assert_only(stats, header_errors=1, skipped_bytes=len(bad))


@pytest.mark.parametrize("ftype", [0, 4, 0x5A, 255])
def test_unknown_type_is_a_header_error_and_next_frame_recovers(ftype):
    bad = only_sync_at_start(raw_frame(ftype, 0, b"hello"))
    messages, stats = decode(bad + log(1, "next"))
    assert [(m.seq, m.text) for m in messages] == [(1, "next")]
    assert_only(stats, header_errors=1, skipped_bytes=len(bad))


@pytest.mark.parametrize("length", [MAX_PAYLOAD + 1, 5000, 0xFFFF])
def test_length_over_4096_is_a_header_error_and_next_frame_recovers(length):
    # payload of 10 bytes, header claims more than the protocol allows (CRC-16 valid)
    bad = only_sync_at_start(raw_frame(TYPE_SAMPLES, 0, bytes(10), length=length))
    nxt = samples(1, 0)
    dec = FrameDecoder()
    # rejected at once: the decoder does not wait for the bogus length
    messages = dec.feed(bad + nxt)
    assert [m.seq for m in messages] == [1]
    assert dec.pending_bytes == 0
    assert_only(dec.stats, header_errors=1, skipped_bytes=len(bad))


def test_length_of_exactly_4096_is_accepted():
    text = "x" * MAX_PAYLOAD
    messages, stats = decode(log(0, text))
    assert [m.text for m in messages] == [text]
    assert_only(stats)


@pytest.mark.parametrize("byte", range(2, 12))
def test_bad_header_crc_is_a_header_error_and_next_frame_recovers(byte):
    """A flipped bit anywhere in bytes 2..11 (fields or the CRC-16 itself)."""
    good = log(0, "first")
    bad = only_sync_at_start(flip(good, byte, bit=byte % 8))
    messages, stats = decode(bad + log(1, "second"))
    assert [(m.seq, m.text) for m in messages] == [(1, "second")]
    assert stats.header_errors == 1 and stats.skipped_bytes == len(bad) and stats.crc_errors == 0
    assert stats.frames == 1


def test_bad_header_crc_value_with_intact_fields():
    right = crc16_ccitt_false(struct.pack("<BBHI", 1, TYPE_LOG, 3, 0))
    bad = only_sync_at_start(raw_frame(TYPE_LOG, 0, b"abc", hcrc=right ^ 1))
    messages, stats = decode(bad + log(1))
    assert [m.seq for m in messages] == [1]
    assert_only(stats, header_errors=1, skipped_bytes=len(bad))


# -- rule 2: CRC-32 -----------------------------------------------------------------------
def _payload_and_crc_bytes(frame: bytes):
    return [HEADER_SIZE, HEADER_SIZE + 1, HEADER_SIZE + 28, len(frame) // 2, len(frame) - 5,
            len(frame) - 4, len(frame) - 1]


_VICTIM = only_sync_at_start(samples(1, NSAMP))


@pytest.mark.parametrize("byte", _payload_and_crc_bytes(_VICTIM))
@pytest.mark.parametrize("bit", [0, 7])
def test_bit_flip_in_payload_or_crc_drops_the_frame(byte, bit):
    before, after = samples(0, 0), samples(2, 2 * NSAMP)
    bad = flip(_VICTIM, byte, bit)
    messages, stats = decode(before + bad + after)
    assert [m.seq for m in messages] == [0, 2]
    # the frame is dropped whole: its samples are not delivered, the stream is split
    assert stats.samples == 2 * NSAMP
    assert messages[1].segment_reason == "gap" and messages[1].gap_samples == NSAMP
    assert_only(stats, crc_errors=1, skipped_bytes=len(bad), lost_frames=1, gaps=1,
                gap_samples=NSAMP)


def test_frame_after_a_truncated_frame_is_recovered():
    """A line dropout cuts a long frame; the frames that follow lie in its claimed payload."""
    long = only_sync_at_start(samples(0, 0, nsamp=100))
    cut = long[:300]
    frames = [samples(1, 100), log(2), status(3), samples(4, 125), samples(5, 150)]
    assert sum(map(len, frames)) > len(long) - len(cut)  # enough bytes to test the CRC-32
    dec = FrameDecoder()
    messages = dec.feed(cut + b"".join(frames))
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
    assert dec.flush() == []
    # seq 0 was never delivered, so seq 1 is the first seq seen: nothing counts as lost
    assert_only(dec.stats, crc_errors=1, skipped_bytes=len(cut))
    assert messages[0].segment_reason == "start"


def test_frame_hidden_inside_a_corrupted_frame_payload_is_recovered():
    """Frame B overwrote part of frame A's payload: A fails its CRC-32, B is found inside it."""
    a = only_sync_at_start(samples(0, 0, nsamp=100))
    b = log(1, "hidden")
    c = samples(2, 100)
    corrupted = a[:60] + b + a[60 + len(b):]
    assert len(corrupted) == len(a)
    messages, stats = decode(corrupted + c)
    assert [summary(m)[:2] for m in messages] == [("log", 1), ("samples", 2)]
    assert messages[0].text == "hidden"
    assert_only(stats, crc_errors=1, skipped_bytes=len(a) - len(b))


def test_frame_inside_a_truncated_frame_at_eof_is_recovered_by_flush():
    """A false header claims 4000 bytes; the stream ends first: flush still finds the frame."""
    fake = raw_frame(TYPE_LOG, 9, b"", length=4000)[:HEADER_SIZE]
    b = samples(10, 0)
    dec = FrameDecoder()
    assert dec.feed(fake + b) == []  # still waiting for 4000 bytes
    assert dec.pending_bytes == len(fake) + len(b)
    messages = dec.flush()
    assert [m.seq for m in messages] == [10]
    assert_only(dec.stats, truncated_frames=1, skipped_bytes=len(fake))


# -- rule 4: sequence numbers -------------------------------------------------------------
def test_seq_jumps_count_lost_frames():
    stream = samples(0, 0) + samples(1, NSAMP) + log(5) + status(6) + log(9)
    messages, stats = decode(stream)
    assert [m.seq for m in messages] == [0, 1, 5, 6, 9]
    assert_only(stats, lost_frames=3 + 2)


def test_seq_wrap_is_not_a_loss():
    top = SEQ_MODULUS - 1
    stream = (samples(top - 1, 0) + samples(top, NSAMP) + samples(0, 2 * NSAMP)
              + samples(1, 3 * NSAMP))
    messages, stats = decode(stream)
    assert [m.seq for m in messages] == [top - 1, top, 0, 1]
    assert_only(stats)
    assert stats.segments == 1


def test_seq_wrap_with_a_loss_counts_only_the_missing_frames():
    top = SEQ_MODULUS - 1
    messages, stats = decode(log(top - 1) + log(1))
    assert [m.seq for m in messages] == [top - 1, 1]
    assert_only(stats, lost_frames=2)  # top and 0


@pytest.mark.parametrize("seqs", [(1000, 1001, 3, 4), (5, 6, 0, 1),
                                  (SEQ_MODULUS - 1, SEQ_MODULUS - 2),
                                  ((1 << 31) + 9, 10)])
def test_seq_going_backwards_is_a_reset_not_billions_lost(seqs):
    messages, stats = decode(b"".join(log(s) for s in seqs))
    assert [m.seq for m in messages] == list(seqs)
    assert_only(stats, seq_resets=1)


def test_repeated_seq_is_a_reset_not_a_loss():
    messages, stats = decode(log(5) + log(5) + log(6))
    assert len(messages) == 3
    assert_only(stats, seq_resets=1)


# -- rule 5: segments ---------------------------------------------------------------------
def _blocks(stream: bytes):
    messages, stats = decode(stream)
    blocks = [m for m in messages if isinstance(m, SampleBlock)]
    return blocks, stats


def test_contiguous_frames_stay_in_one_segment_across_status_and_log():
    stream = samples(0, 0) + status(1) + log(2) + samples(3, NSAMP) + samples(4, 2 * NSAMP)
    blocks, stats = _blocks(stream)
    assert [(b.segment, b.segment_reason, b.gap_samples) for b in blocks] == [
        (1, "start", 0), (1, None, 0), (1, None, 0)]
    assert stats.segments == 1


def test_sample_index_gap_begins_a_new_segment():
    stream = (samples(0, 0) + samples(1, NSAMP) + samples(2, 3 * NSAMP + 7)
              + samples(3, 4 * NSAMP + 7))
    blocks, stats = _blocks(stream)
    assert [(b.segment, b.segment_reason, b.gap_samples) for b in blocks] == [
        (1, "start", 0), (1, None, 0), (2, "gap", NSAMP + 7), (2, None, 0)]
    assert_only(stats, gaps=1, gap_samples=NSAMP + 7)
    assert stats.segments == 2
    # the split is in the data too: the block after the gap starts where its index says
    assert blocks[2].sample_index == 3 * NSAMP + 7
    assert blocks[2].starttime.ns == T0 + (3 * NSAMP + 7) * 10**7


def test_dropped_frame_gives_both_lost_frame_and_gap():
    stream = samples(0, 0) + samples(2, 2 * NSAMP) + samples(3, 3 * NSAMP)
    blocks, stats = _blocks(stream)
    assert [b.segment_reason for b in blocks] == ["start", "gap", None]
    assert_only(stats, lost_frames=1, gaps=1, gap_samples=NSAMP)


@pytest.mark.parametrize("new_index", [0, 10, 2 * NSAMP - 1])
def test_sample_index_going_back_is_a_restart(new_index):
    stream = samples(0, 1000) + samples(1, 1000 + NSAMP) + samples(0, new_index) + \
        samples(1, new_index + NSAMP)
    blocks, stats = _blocks(stream)
    assert [(b.segment, b.segment_reason, b.gap_samples) for b in blocks] == [
        (1, "start", 0), (1, None, 0), (2, "restart", 0), (2, None, 0)]
    assert stats.restarts == 1 and stats.segments == 2 and stats.gaps == 0
    assert stats.seq_resets == 1 and stats.lost_frames == 0


@pytest.mark.parametrize("change", [dict(rate=200_000), dict(nch=1), dict(nch=8),
                                    dict(enc=ENC_INT32), dict(enc=ENC_INT16)])
def test_format_change_begins_a_new_segment(change):
    stream = samples(0, 0) + samples(1, NSAMP) + samples(2, 2 * NSAMP, **change) + \
        samples(3, 3 * NSAMP, **change)
    blocks, stats = _blocks(stream)
    assert [(b.segment, b.segment_reason) for b in blocks] == [
        (1, "start"), (1, None), (2, "format"), (2, None)]
    assert_only(stats)
    assert stats.segments == 2
    assert blocks[2].nch == change.get("nch", 3)
    np.testing.assert_array_equal(blocks[2].data, counts(NSAMP, change.get("nch", 3)).T)


# -- impossible content with valid CRCs ---------------------------------------------------
MALFORMED = {
    "nch_0": (TYPE_SAMPLES, samples_payload_raw(nch=0)),
    "nch_9": (TYPE_SAMPLES, samples_payload_raw(nch=9, nsamp=2)),
    "enc_0": (TYPE_SAMPLES, samples_payload_raw(enc=0, nsamp=2)),
    "enc_9": (TYPE_SAMPLES, samples_payload_raw(enc=9, nsamp=2)),
    "nsamp_0": (TYPE_SAMPLES, samples_payload_raw(nsamp=0)),
    "rate_0": (TYPE_SAMPLES, samples_payload_raw(rate=0)),
    "length_one_more": (TYPE_SAMPLES, samples_payload_raw() + b"\x00"),
    "length_one_less": (TYPE_SAMPLES, samples_payload_raw()[:-1]),
    "length_for_int32_with_enc_int24": (TYPE_SAMPLES, samples_payload_raw(bps=4)),
    "payload_empty": (TYPE_SAMPLES, b""),
    "payload_27_bytes": (TYPE_SAMPLES, samples_payload_raw()[:27]),
    "status_not_json": (TYPE_STATUS, b"temp 21.5 C"),
    "status_truncated_json": (TYPE_STATUS, b'{"temp_c": 21.'),
    "status_empty": (TYPE_STATUS, b""),
    "status_array": (TYPE_STATUS, b"[1, 2, 3]"),
    "status_string": (TYPE_STATUS, b'"ok"'),
    "status_number": (TYPE_STATUS, b"42"),
    "status_null": (TYPE_STATUS, b"null"),
    "status_invalid_utf8": (TYPE_STATUS, b'{"fw": "1.\xff"}'),
    "status_utf8_surrogate": (TYPE_STATUS, b'{"fw": "\xed\xa0\x80"}'),
    "status_nested_too_deep": (TYPE_STATUS, b"[" * 2048 + b"]" * 2048),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_crc_valid_but_impossible_frame_is_malformed(name):
    ftype, payload = MALFORMED[name]
    bad = encode_frame(ftype, 1, payload)
    stream = samples(0, 0) + bad + samples(2, NSAMP) + status(3)
    messages, stats = decode(stream)
    assert [m.seq for m in messages] == [0, 2, 3]  # nothing for seq 1, certainly no samples
    assert stats.malformed_frames == 1
    assert stats.frames == 3 and stats.sample_frames == 2 and stats.status_frames == 1
    assert stats.samples == 2 * NSAMP
    # the frame was received (its seq counts), and it did not disturb the segment state
    assert_only(stats, malformed_frames=1)
    assert [(m.segment, m.segment_reason) for m in messages[:2]] == [(1, "start"), (1, None)]


def test_malformed_first_frame_leaves_no_segment_state():
    messages, stats = decode(encode_frame(TYPE_SAMPLES, 0, samples_payload_raw(nch=0))
                             + samples(1, 500))
    assert [(m.seq, m.segment, m.segment_reason) for m in messages] == [(1, 1, "start")]
    assert stats.segments == 1 and stats.malformed_frames == 1


def test_status_keeps_unknown_keys():
    fields = {"fw": "1.4.2", "temp_c": 21.5, "vendor_thing": [1, {"x": None}], "ünï": "çødé"}
    (msg,), stats = decode(status(4, **fields))
    assert msg.fields == fields
    assert_only(stats)


def test_log_with_invalid_utf8_is_delivered_with_replacement_chars():
    raw = b"ADC \xff\xfe overrun \xc3"
    (msg,), stats = decode(encode_frame(TYPE_LOG, 0, raw))
    assert isinstance(msg, LogMessage)
    assert msg.text == raw.decode("utf-8", errors="replace")
    assert msg.text.startswith("ADC \ufffd\ufffd overrun") and msg.text.endswith("\ufffd")
    assert stats.log_frames == 1
    assert_only(stats)


# -- end of stream ------------------------------------------------------------------------
_PARTIAL = only_sync_at_start(samples(0, 0))


@pytest.mark.parametrize("k", [2, 3, 11, 12, 13, HEADER_SIZE + 28, len(_PARTIAL) - 4,
                               len(_PARTIAL) - 1])
def test_partial_frame_at_eof_is_a_truncated_frame(k):
    dec = FrameDecoder()
    assert dec.feed(_PARTIAL[:k]) == []
    assert dec.pending_bytes == k  # held back: the rest may still come
    assert dec.flush() == []  # and nothing fake at the end
    assert dec.pending_bytes == 0
    assert dec.stats.frames == 0 and dec.stats.samples == 0
    assert_only(dec.stats, truncated_frames=1, skipped_bytes=k)


def test_lone_sync_byte_at_eof_is_skipped():
    dec = FrameDecoder()
    assert dec.feed(b"\x00" + _PARTIAL[:1]) == []
    assert dec.pending_bytes == 1
    assert dec.flush() == []
    assert_only(dec.stats, skipped_bytes=2)


def test_complete_frames_then_a_partial_one():
    dec = FrameDecoder()
    messages = dec.feed(log(0) + samples(1, 0) + samples(2, NSAMP)[:-1])
    assert [m.seq for m in messages] == [0, 1]
    assert dec.flush() == []
    assert_only(dec.stats, truncated_frames=1, skipped_bytes=len(samples(2, NSAMP)) - 1)


def test_flush_of_a_clean_stream_counts_nothing():
    dec = FrameDecoder()
    assert len(dec.feed(log(0) + log(1))) == 2
    assert dec.flush() == []
    assert_only(dec.stats)


# -- chunking -----------------------------------------------------------------------------
def _field_day() -> bytes:
    """Every defect of this file in one stream, ending with a partial frame."""
    top = SEQ_MODULUS - 1
    hidden_in = only_sync_at_start(samples(0, 0, nsamp=60))
    parts = [
        GARBAGE,
        samples(top - 2, 0),
        status(top - 1),
        flip(samples(top, NSAMP), HEADER_SIZE + 40),  # CRC-32 error: lost frame + gap
        samples(0, 2 * NSAMP),
        b"\x00" + SYNC + b"\x01\x09" + bytes(20),  # false sync: header error
        raw_frame(TYPE_LOG, 1, b"bad version", version=3),
        encode_frame(TYPE_SAMPLES, 2, samples_payload_raw(nch=9, nsamp=1)),  # malformed
        samples(3, 3 * NSAMP, enc=ENC_INT32),  # format change
        encode_frame(TYPE_LOG, 4, b"temp \xff high"),
        samples(5, 10 * NSAMP, enc=ENC_INT32),  # gap
        hidden_in[:50] + log(6, "hidden") + hidden_in[50 + len(log(6, "hidden")):],
        samples(3, 0, enc=ENC_INT32),  # seq reset + restart
        samples(4, NSAMP, enc=ENC_INT32)[:100],  # truncated by a dropout...
        samples(5, 2 * NSAMP, enc=ENC_INT32),  # ...and the next one is recovered
        SYNC + b"\x01",  # a dangling sync at the very end
    ]
    return b"".join(parts)


def test_field_day_stream_counts_every_defect():
    messages, stats = decode(_field_day())
    top = SEQ_MODULUS - 1
    assert [summary(m)[:2] for m in messages] == [
        ("samples", top - 2), ("status", top - 1), ("samples", 0), ("samples", 3), ("log", 4),
        ("samples", 5), ("log", 6), ("samples", 3), ("samples", 5)]
    blocks = [m for m in messages if isinstance(m, SampleBlock)]
    assert [b.segment_reason for b in blocks] == ["start", "gap", "format", "gap", "restart",
                                                  "gap"]
    assert stats.crc_errors == 3  # the bit flip, the frame that hid a log, the dropout
    assert stats.header_errors == 2
    assert stats.malformed_frames == 1
    assert stats.truncated_frames == 1
    assert stats.seq_resets == 1
    # seq top (CRC error), seq 1 (bad version), seq 4 after the reset (dropout)
    assert stats.lost_frames == 3
    assert stats.restarts == 1 and stats.gaps == 3
    assert stats.frames == len(messages)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, 64, 269, 1000])
def test_chunked_feeding_is_identical_to_one_shot(size):
    stream = _field_day()
    whole, whole_stats = decode(stream)
    chunked, chunked_stats = feed_in_chunks(stream, size)
    assert [summary(m) for m in chunked] == [summary(m) for m in whole]
    assert chunked_stats.as_dict() == whole_stats.as_dict()


def test_lone_sync_byte_split_across_chunks_still_syncs():
    f = samples(0, 0)
    dec = FrameDecoder()
    assert dec.feed(GARBAGE + f[:1]) == []
    assert dec.pending_bytes == 1  # the A5 is kept: its partner may come next
    messages = dec.feed(f[1:])
    assert [m.seq for m in messages] == [0]
    assert_only(dec.stats, skipped_bytes=len(GARBAGE))


def test_lone_sync_byte_followed_by_no_partner_is_skipped_once():
    f = samples(0, 0)
    dec = FrameDecoder()
    assert dec.feed(b"\x01\xa5") == []
    assert dec.feed(b"\xa5") == []  # the first A5 had no partner; the second might
    assert dec.feed(b"\x00\xa5") == []
    messages = dec.feed(f[1:])
    assert [m.seq for m in messages] == [0]
    assert_only(dec.stats, skipped_bytes=4)


def test_sync_pair_split_across_three_chunks():
    f = samples(0, 0)
    dec = FrameDecoder()
    out = dec.feed(f[:1]) + dec.feed(f[1:2]) + dec.feed(f[2:11]) + dec.feed(f[11:])
    assert [m.seq for m in out] == [0]
    assert_only(dec.stats)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_any_bytes_like_input(wrap):
    data = GARBAGE + samples(0, 0)
    dec = FrameDecoder()
    assert [m.seq for m in dec.feed(wrap(data))] == [0]
    assert dec.stats.bytes_in == len(data)
    assert_only(dec.stats, skipped_bytes=len(GARBAGE))


def test_bytes_in_counts_bytes_of_a_wide_memoryview():
    """A memoryview of 2-byte items has half as many items as bytes; bytes_in counts bytes."""
    data = GARBAGE + samples(0, 0)
    data += b"\x00" * (len(data) % 2)
    dec = FrameDecoder()
    view = memoryview(data).cast("H")
    assert len(view) == len(data) // 2
    assert [m.seq for m in dec.feed(view)] == [0]
    dec.flush()
    assert dec.stats.bytes_in == len(data)
    assert dec.stats.bytes_in == dec.stats.skipped_bytes + len(samples(0, 0))


@pytest.mark.parametrize("junk", [None, "A5 5A", 42, 3.5, memoryview(b"abcdef")[::2]])
def test_non_bytes_input_never_raises(junk):
    dec = FrameDecoder()
    assert dec.feed(junk) == []
    assert dec.stats.bytes_in == 0
    assert [m.seq for m in dec.feed(log(0))] == [0]


# -- a reboot after seq passed 2^31 ---------------------------------------------------------
def _reboot_stream(first_seq: int, boot_log: bool) -> bytes:
    enc = FrameEncoder(seq=first_seq)
    block = np.zeros((25, 3), dtype=np.int32)
    out = [enc.samples(i * 25, i * 10**8, 250000, block) for i in range(4)]
    enc.seq = 0  # the digitizer reboots: seq and sample index start again
    if boot_log:
        out.append(enc.log("boot"))
    out += [enc.samples(i * 25, 10**9 + i * 10**8, 250000, block) for i in range(3)]
    return b"".join(out)


@pytest.mark.parametrize("first_seq", [5, 2**31 + 7, 2**32 - 10**6])
@pytest.mark.parametrize("boot_log", [False, True])
def test_reboot_is_a_reset_not_billions_of_lost_frames(first_seq, boot_log):
    _, st = decode_bytes(_reboot_stream(first_seq, boot_log))
    assert st.lost_frames == 0
    assert st.seq_resets == 1
    assert st.restarts == 1 and st.segments == 2


def test_reboot_within_2_16_frames_of_the_wrap_counts_as_lost_frames():
    # indistinguishable from frames lost across the wrap: rule 4 applies
    _, st = decode_bytes(_reboot_stream(2**32 - 100, boot_log=False))
    assert st.lost_frames == 96 and st.seq_resets == 0 and st.restarts == 1
