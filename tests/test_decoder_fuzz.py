"""Property tests of the frame decoder (hypothesis).

* arbitrary bytes, in arbitrary chunks, never raise, never produce a message, and every byte
  is accounted for;
* intact frames embedded in garbage and among corrupted frames are all recovered, exactly and
  in order, and the byte/seq accounting is exact;
* chunked decoding (one byte at a time included) equals one-shot decoding;
* sample-index continuity follows a reference model of rule 5.
"""
from __future__ import annotations

import struct

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from firmware_bridge.decoder import FrameDecoder
from firmware_bridge.encoder import FrameEncoder, encode_frame, max_samples_per_frame
from firmware_bridge.protocol import (
    BYTES_PER_SAMPLE,
    ENC_INT16,
    ENC_INT24,
    ENC_INT32,
    ENC_RANGE,
    HEADER_SIZE,
    MAX_PAYLOAD,
    SEQ_MODULUS,
    SYNC,
    TYPE_LOG,
    TYPE_SAMPLES,
    TYPE_STATUS,
    LogMessage,
    SampleBlock,
    StatusMessage,
    crc16_ccitt_false,
)

ENCS = (ENC_INT24, ENC_INT32, ENC_INT16)
#: the most bytes a decoder may hold back after a feed: one frame of the longest payload, less 1
MAX_PENDING = HEADER_SIZE + MAX_PAYLOAD + 4 - 1
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- strategies ---------------------------------------------------------------------------
def fake_header(ftype: int, length: int, seq: int, version: int = 1) -> bytes:
    """Sync + a header whose CRC-16 is right: the decoder must wait for, then reject, its body."""
    head = struct.pack("<BBHI", version, ftype, length, seq)
    return SYNC + head + crc16_ccitt_false(head).to_bytes(2, "little")


#: bytes rich in syncs and plausible headers, to reach the decoder's slow paths
sync_rich = st.lists(
    st.one_of(
        st.binary(max_size=24),
        st.just(SYNC),
        st.just(b"\xa5"),
        st.builds(fake_header, st.integers(0, 4), st.integers(0, 0xFFFF),
                  st.integers(0, SEQ_MODULUS - 1), st.integers(0, 2)),
        st.builds(fake_header, st.sampled_from([TYPE_SAMPLES, TYPE_STATUS, TYPE_LOG]),
                  st.integers(0, 300), st.integers(0, SEQ_MODULUS - 1)),
    ),
    max_size=30,
).map(b"".join)

garbage = st.one_of(st.binary(max_size=48), sync_rich)
#: any start, or one a few frames before the 2^32 wrap
seq_start = st.one_of(st.integers(0, SEQ_MODULUS - 1),
                      st.integers(SEQ_MODULUS - 6, SEQ_MODULUS - 1))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64),
                         st.floats(allow_nan=False), st.text(max_size=12))
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=8)
status_fields = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@st.composite
def sample_args(draw):
    """Arguments of :meth:`FrameEncoder.samples`: any legal format, values within the encoding."""
    nch = draw(st.integers(1, 8))
    enc = draw(st.sampled_from(ENCS))
    top = max_samples_per_frame(nch, enc)
    nsamp = draw(st.one_of(st.integers(1, min(40, top)), st.just(top)))
    lo, hi = ENC_RANGE[enc]
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(
        lo, hi, size=(nsamp, nch), endpoint=True)
    values.flat[0] = draw(st.sampled_from([lo, hi, -1, 0, 1, int(values.flat[0])]))
    return dict(
        sample_index=draw(st.integers(0, 2**64 - 1 - nsamp)),
        t0_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        rate_mhz=draw(st.integers(1, 2**32 - 1)),
        samples=values, enc=enc,
        time_flags=draw(st.integers(0, 7)),
        time_quality=draw(st.integers(0, 100)),
        status_flags=draw(st.integers(0, 3)),
    )


def expected_of(kind: str, seq: int, arg):
    """What the decoder must deliver for a frame made from ``arg``."""
    if kind == "samples":
        a = arg
        data = np.ascontiguousarray(np.asarray(a["samples"]).T.astype(np.int32))
        return ("samples", seq, a["sample_index"], a["t0_ns"], a["rate_mhz"], a["enc"],
                a["time_flags"], a["time_quality"], a["status_flags"], data.shape, data.tobytes())
    if kind == "status":
        return ("status", seq, arg)
    return ("log", seq, arg)


def summary(m, with_segments: bool = False):
    """The same view of a decoded message (segment fields on request)."""
    if isinstance(m, SampleBlock):
        assert m.data.dtype == np.int32 and m.data.flags.c_contiguous
        out = ("samples", m.seq, m.sample_index, m.t0_ns, m.rate_mhz, m.enc, m.time_flags,
               m.time_quality, m.status_flags, m.data.shape, m.data.tobytes())
        return out + (m.segment, m.segment_reason, m.gap_samples) if with_segments else out
    if isinstance(m, StatusMessage):
        return ("status", m.seq, m.fields)
    assert isinstance(m, LogMessage)
    return ("log", m.seq, m.text)


@st.composite
def mutated(draw, frame: bytes) -> bytes:
    """``frame`` damaged the ways a serial line damages frames.

    An insertion can leave the frame whole (junk ending in ``A5 5A`` inserted after the
    sync); :func:`streams` rejects streams where a damaged frame's bytes still occur.
    """
    how = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    if how == "flip":
        pos = draw(st.integers(0, len(frame) - 1))
        b = bytearray(frame)
        b[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if how == "truncate":
        return frame[:draw(st.integers(1, len(frame) - 1))]
    pos = draw(st.integers(2, len(frame) - 1))
    if how == "insert":
        return frame[:pos] + draw(st.binary(min_size=1, max_size=8)) + frame[pos:]
    return frame[:pos] + frame[pos + draw(st.integers(1, min(8, len(frame) - pos))):]


@st.composite
def streams(draw, corrupt: bool, malformed: bool = False, max_frames: int = 8):
    """Frames between garbage; returns (bytes, expected messages, their frame sizes, lost).

    With ``corrupt`` some frames are damaged (they use up a seq and must not be delivered);
    with ``malformed`` some frames carry random payloads under valid CRCs (no expectation
    is given for those: only for chunking tests).
    """
    enc = FrameEncoder(seq=draw(seq_start))
    parts, expected, sizes, intact, damaged = [], [], [], [], []
    for _ in range(draw(st.integers(0, max_frames))):
        parts.append(draw(garbage))
        kind = draw(st.sampled_from(["samples", "status", "log"]))
        seq = enc.seq
        if malformed and draw(st.integers(0, 4)) == 0:
            ftype = {"samples": TYPE_SAMPLES, "status": TYPE_STATUS, "log": TYPE_LOG}[kind]
            parts.append(encode_frame(ftype, seq, draw(st.binary(max_size=80))))
            enc.seq = (seq + 1) % SEQ_MODULUS
            intact.append(None)  # CRC-valid, content unknown
            continue
        if kind == "samples":
            arg = draw(sample_args())
            frame = enc.samples(**arg)
        elif kind == "status":
            arg = draw(status_fields)
            frame = enc.status(arg)
        else:
            arg = draw(st.text(max_size=300))
            frame = enc.log(arg)
        if corrupt and draw(st.integers(0, 3)) == 0:
            parts.append(draw(mutated(frame)))
            intact.append(False)
            damaged.append(frame)
        else:
            parts.append(frame)
            expected.append(expected_of(kind, seq, arg))
            sizes.append(len(frame))
            intact.append(True)
    parts.append(draw(garbage))
    stream = b"".join(parts)
    # a damaged frame must really be gone: not rebuilt by the damage or by its neighbours
    assume(not any(frame in stream for frame in damaged))
    # frames lost according to seq: the damaged ones between the first and last intact one
    kept = [i for i, ok in enumerate(intact) if ok]
    lost = sum(1 for ok in intact[kept[0]:kept[-1]] if ok is False) if kept else 0
    return stream, expected, sizes, lost


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


cut_lists = st.lists(st.integers(0, 20_000), max_size=40)


def assert_sane(stats) -> None:
    for name, value in stats.as_dict().items():
        assert value >= 0, (name, stats)
    assert stats.frames == stats.sample_frames + stats.status_frames + stats.log_frames


# -- properties ---------------------------------------------------------------------------
@FUZZ
@given(data=st.one_of(st.binary(max_size=6000), sync_rich), cuts=cut_lists)
def test_arbitrary_bytes_never_raise_and_are_all_accounted(data, cuts):
    dec = FrameDecoder()
    for chunk in chunked(data, cuts):
        # a CRC-valid frame by chance needs 48 matching CRC bits: never a message here
        assert dec.feed(chunk) == []
        st_ = dec.stats
        assert_sane(st_)
        assert st_.frames == st_.malformed_frames == 0
        assert dec.pending_bytes <= MAX_PENDING
        assert st_.skipped_bytes + dec.pending_bytes == st_.bytes_in
    assert dec.flush() == []
    assert dec.pending_bytes == 0
    assert dec.stats.bytes_in == dec.stats.skipped_bytes == len(data)
    assert dec.stats.truncated_frames <= 1
    assert dec.stats.samples == dec.stats.segments == 0


@FUZZ
@given(case=streams(corrupt=False), cuts=cut_lists)
def test_intact_frames_in_garbage_are_all_recovered_in_order(case, cuts):
    check_recovery(case, cuts)


@FUZZ
@given(case=streams(corrupt=True), cuts=cut_lists)
def test_intact_frames_among_damaged_frames_are_all_recovered_in_order(case, cuts):
    check_recovery(case, cuts)


def check_recovery(case, cuts) -> None:
    stream, expected, sizes, lost = case
    dec = FrameDecoder()
    got = []
    for chunk in chunked(stream, cuts):
        got += dec.feed(chunk)
        st_ = dec.stats
        assert_sane(st_)
        assert dec.pending_bytes <= MAX_PENDING
        # every byte in so far was skipped, is part of a delivered frame, or is held back
        assert st_.skipped_bytes + sum(sizes[:len(got)]) + dec.pending_bytes == st_.bytes_in
    got += dec.flush()
    assert [summary(m) for m in got] == expected
    st_ = dec.stats
    assert dec.pending_bytes == 0
    assert st_.skipped_bytes == len(stream) - sum(sizes)
    assert st_.frames == len(expected) and st_.malformed_frames == 0
    assert st_.samples == sum(e[9][1] for e in expected if e[0] == "samples")
    assert st_.lost_frames == lost and st_.seq_resets == 0
    assert st_.truncated_frames <= 1


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=streams(corrupt=True, malformed=True, max_frames=6), cuts=cut_lists)
def test_chunked_decode_equals_one_shot(case, cuts):
    stream = case[0]
    one = FrameDecoder()
    whole = one.feed(stream) + one.flush()
    ways = [chunked(stream, cuts)]
    if len(stream) <= 2500:
        ways.append([stream[i:i + 1] for i in range(len(stream))])
    for chunks in ways:
        dec = FrameDecoder()
        got = []
        for chunk in chunks:
            got += dec.feed(chunk)
        got += dec.flush()
        assert [summary(m, True) for m in got] == [summary(m, True) for m in whole]
        assert dec.stats.as_dict() == one.stats.as_dict()
    assert_sane(one.stats)
    # whatever a CRC-valid random payload held, no sample block is ever inconsistent
    for m in whole:
        if isinstance(m, SampleBlock):
            assert 1 <= m.nch <= 8 and m.nsamp >= 1 and m.rate_mhz > 0
            assert m.enc in BYTES_PER_SAMPLE


_moves = st.one_of(
    st.tuples(st.just("next"), st.just(0)),
    st.tuples(st.just("gap"), st.integers(1, 10**6)),
    st.tuples(st.just("back"), st.integers(1, 10**6)),
    st.tuples(st.just("format"), st.sampled_from([(250_000, 3, ENC_INT24), (100_000, 3, ENC_INT24),
                                                  (250_000, 1, ENC_INT24), (250_000, 3, ENC_INT32),
                                                  (250_000, 3, ENC_INT16)])),
)


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 10**9), nsamps=st.lists(st.integers(1, 30), min_size=1, max_size=12),
       moves=st.lists(_moves, min_size=12, max_size=12), cuts=cut_lists)
def test_segments_follow_the_reference_model(start, nsamps, moves, cuts):
    """Rule 5 against a plain model: contiguous, gap, restart (index back) and format change."""
    enc = FrameEncoder()
    fmt = (250_000, 3, ENC_INT24)
    index = start
    frames, model = [], []
    expected_index = None
    model_fmt = None
    segment = 0
    for nsamp, (move, arg) in zip(nsamps, moves):
        if expected_index is not None:
            if move == "gap":
                index = expected_index + arg
            elif move == "back":
                index = max(0, expected_index - arg)
            elif move == "format":
                fmt = arg
        rate, nch, code = fmt
        frames.append(enc.samples(index, 0, rate, np.zeros((nsamp, nch), np.int64), enc=code))
        # the model
        if expected_index is None:
            reason, gap = "start", 0
        elif fmt != model_fmt:
            reason, gap = "format", 0
        elif index > expected_index:
            reason, gap = "gap", index - expected_index
        elif index < expected_index:
            reason, gap = "restart", 0
        else:
            reason, gap = None, 0
        segment += reason is not None
        model.append((index, segment, reason, gap))
        expected_index, model_fmt = index + nsamp, fmt
        index = expected_index
    dec = FrameDecoder()
    got = []
    for chunk in chunked(b"".join(frames), cuts):
        got += dec.feed(chunk)
    got += dec.flush()
    assert [(b.sample_index, b.segment, b.segment_reason, b.gap_samples) for b in got] == model
    st_ = dec.stats
    assert st_.segments == segment
    assert st_.gaps == sum(r == "gap" for _, _, r, _ in model)
    assert st_.gap_samples == sum(g for *_, g in model)
    assert st_.restarts == sum(r == "restart" for _, _, r, _ in model)
    assert st_.lost_frames == st_.seq_resets == 0
