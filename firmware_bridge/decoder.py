"""Incremental decoder of digitizer frames: any byte chunks in, messages out, never raises.

Implements every receiver rule of ``docs/spec/digitizer-frame.md``:

1. scan for ``A5 5A``; a header with a bad version, type, length or CRC-16 drops the first
   sync byte and the scan goes on;
2. a bad CRC-32 counts a CRC error, drops the first sync byte and the scan goes on;
3. well-formed frames are delivered; bytes skipped while scanning are counted;
4. a ``seq`` jump counts lost frames;
5. sample-index continuity splits the stream into segments (gap, restart, format change);
6. nothing raises, whatever the bytes: every defect is counted in :class:`DecoderStats`.

Frames whose CRCs are right but whose content is impossible (``nch`` 0, ``enc`` 9,
``nsamp`` 0, a length that does not match, a status that is not a JSON object) are counted
as ``malformed_frames`` and yield no message: never a fake sample.
"""
from __future__ import annotations

import binascii
import json
import struct
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from firmware_bridge.protocol import (
    BYTES_PER_SAMPLE,
    ENC_INT16,
    ENC_INT24,
    HEADER_SIZE,
    MAX_PAYLOAD,
    SAMPLES_HEADER_SIZE,
    SAMPLES_STRUCT,
    SEQ_MODULUS,
    SYNC,
    TYPE_LOG,
    TYPE_SAMPLES,
    TYPE_STATUS,
    VERSION,
    LogMessage,
    SampleBlock,
    StatusMessage,
    StreamConfig,
)

Message = SampleBlock | StatusMessage | LogMessage

_HEAD = struct.Struct("<BBHIH")  # version, type, length, seq, hcrc (after the sync)
_U32 = struct.Struct("<I")
_SYNC0 = SYNC[0]
_HALF_SEQ = SEQ_MODULUS // 2
#: a seq jump at least this long, together with the sample index going back, is a reboot
#: (65536 frames are 1.8 h at 10 frames/s); shorter ones count as lost frames, as rule 4 says
_REBOOT_JUMP = 1 << 16


@dataclass
class DecoderStats:
    """Counters of everything the decoder has seen since it was created."""

    bytes_in: int = 0
    #: well-formed frames delivered, all types
    frames: int = 0
    sample_frames: int = 0
    status_frames: int = 0
    log_frames: int = 0
    #: samples per channel delivered (sum of ``nsamp``)
    samples: int = 0
    crc_errors: int = 0
    header_errors: int = 0
    #: frames with valid CRCs but impossible content (no message delivered)
    malformed_frames: int = 0
    skipped_bytes: int = 0
    #: partial frames left when the stream ended (``flush``)
    truncated_frames: int = 0
    #: frames missing according to ``seq``
    lost_frames: int = 0
    #: ``seq`` went backwards (digitizer restart)
    seq_resets: int = 0
    #: gaps in ``sample_index`` (data lost; the stream was split)
    gaps: int = 0
    #: samples per channel lost in those gaps
    gap_samples: int = 0
    #: ``sample_index`` went backwards (digitizer restart)
    restarts: int = 0
    #: segments begun (the first frame begins one)
    segments: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FrameDecoder:
    """Feed it bytes in chunks of any size (one byte at a time works); it returns messages.

    ``config`` names the channels and station; it is attached to every
    :class:`SampleBlock` so that ``block.to_stream()`` produces proper SEED ids.
    """

    def __init__(self, config: StreamConfig | None = None) -> None:
        self.config = config
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._last_seq: int | None = None
        self._expected_index: int | None = None
        self._format: tuple[int, int, int] | None = None
        self._segment = 0
        self._jump_since_samples = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Add bytes; return the messages of every frame completed by them, in order."""
        out: list[Message] = []
        buf = self._buf
        before = len(buf)
        try:
            buf += data
        except (TypeError, BufferError):  # not bytes-like: nothing to decode, and still no exception
            return out
        # count the bytes appended, not len(data): a memoryview of wider items (e.g. format
        # "H" or "i") has len() in items, and bytes_in must match the bytes that were scanned
        self.stats.bytes_in += len(buf) - before
        self._scan(out, final=False)
        return out

    def flush(self) -> list[Message]:
        """The stream ended (EOF, port closed): decode what can be, count partial frames."""
        out: list[Message] = []
        self._scan(out, final=True)
        return out

    # -- scanning -------------------------------------------------------------------------
    def _scan(self, out: list[Message], final: bool) -> None:
        buf = self._buf
        n = len(buf)
        pos = 0
        skipped = header_errors = crc_errors = 0
        truncated = False
        find = buf.find
        unpack_head = _HEAD.unpack_from
        unpack_u32 = _U32.unpack_from
        crc_hqx = binascii.crc_hqx
        crc32 = zlib.crc32
        while True:
            i = find(SYNC, pos)
            if i < 0:
                # keep a trailing first sync byte: its partner may be in the next chunk
                keep = 1 if (not final and n > pos and buf[n - 1] == _SYNC0) else 0
                skipped += n - keep - pos
                pos = n - keep
                break
            skipped += i - pos
            pos = i
            if n - pos < HEADER_SIZE:
                if final:
                    truncated = True
                    skipped += 1
                    pos += 1
                    continue
                break
            version, ftype, length, seq, hcrc = unpack_head(buf, pos + 2)
            if (version != VERSION or not 1 <= ftype <= 3 or length > MAX_PAYLOAD
                    or crc_hqx(buf[pos + 2:pos + 10], 0xFFFF) != hcrc):
                header_errors += 1
                skipped += 1
                pos += 1
                continue
            end = pos + HEADER_SIZE + length + 4
            if end > n:
                if final:
                    truncated = True
                    skipped += 1
                    pos += 1
                    continue
                break
            if crc32(buf[pos + 2:end - 4]) != unpack_u32(buf, end - 4)[0]:
                crc_errors += 1
                skipped += 1
                pos += 1
                continue
            self._deliver(ftype, seq, bytes(buf[pos + HEADER_SIZE:end - 4]), out)
            pos = end
        if pos:
            del buf[:pos]
        st = self.stats
        st.skipped_bytes += skipped
        st.header_errors += header_errors
        st.crc_errors += crc_errors
        if truncated:
            st.truncated_frames += 1

    # -- frames ---------------------------------------------------------------------------
    def _deliver(self, ftype: int, seq: int, payload: bytes, out: list[Message]) -> None:
        st = self.stats
        last = self._last_seq
        missing = 0 if last is None else (seq - last - 1) % SEQ_MODULUS
        backwards = last is not None and seq < last  # numerically: a reboot, or a wrap
        self._last_seq = seq
        if ftype == TYPE_SAMPLES:
            block = self._samples(seq, payload)
            restart = block is not None and block.segment_reason == "restart"
            self._count_seq(missing, backwards, restart)
            if block is None:
                st.malformed_frames += 1
                return
            st.sample_frames += 1
            st.samples += block.data.shape[1]
            out.append(block)
        else:
            self._count_seq(missing, backwards, restart=False, sample_frame=False)
        if ftype == TYPE_STATUS:
            try:
                fields = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                fields = None
            if not isinstance(fields, dict):
                st.malformed_frames += 1
                return
            st.status_frames += 1
            out.append(StatusMessage(seq=seq, fields=fields))
        elif ftype == TYPE_LOG:
            st.log_frames += 1
            out.append(LogMessage(seq=seq, text=payload.decode("utf-8", errors="replace")))
        st.frames += 1

    def _count_seq(self, missing: int, backwards: bool, restart: bool,
                   sample_frame: bool = True) -> None:
        """Rule 4: frames missing by ``seq``; a backwards step (or a reboot) is a reset.

        A reboot restarts ``seq`` near 0 wherever it was, so past 2^31 the jump looks like a
        run of lost frames that wrapped. The first sample frame after it tells them apart:
        its sample index goes back too. A jump seen on a status or log frame just before it
        (the firmware's boot message) is then taken back from ``lost_frames`` and counted
        as the reset it was. Within 2^16 frames of the wrap a reboot cannot be told from
        frames lost across the wrap; those count as lost, as rule 4 says.
        """
        st = self.stats
        if restart and not missing and self._jump_since_samples:
            st.lost_frames -= self._jump_since_samples
            st.seq_resets += 1
        elif missing:
            if missing >= _HALF_SEQ or (restart and backwards and missing >= _REBOOT_JUMP):
                st.seq_resets += 1
            else:
                st.lost_frames += missing
                if not sample_frame and backwards and missing >= _REBOOT_JUMP:
                    self._jump_since_samples = missing
        if sample_frame:
            self._jump_since_samples = 0

    def _samples(self, seq: int, payload: bytes) -> SampleBlock | None:
        if len(payload) < SAMPLES_HEADER_SIZE:
            return None
        (sample_index, t0_ns, rate_mhz, nch, enc, nsamp,
         time_flags, time_quality, status_flags, _reserved) = SAMPLES_STRUCT.unpack_from(payload)
        bps = BYTES_PER_SAMPLE.get(enc)
        if (bps is None or not 1 <= nch <= 8 or nsamp < 1 or rate_mhz == 0
                or len(payload) != SAMPLES_HEADER_SIZE + nch * nsamp * bps):
            return None
        count = nch * nsamp
        if enc == ENC_INT24:
            wide = np.empty((count, 4), dtype=np.uint8)
            wide[:, 1:] = np.frombuffer(payload, dtype=np.uint8,
                                        offset=SAMPLES_HEADER_SIZE).reshape(count, 3)
            values = wide.view("<i4").reshape(count) >> 8  # arithmetic shift sign-extends
        elif enc == ENC_INT16:
            values = np.frombuffer(payload, dtype="<i2", offset=SAMPLES_HEADER_SIZE).astype(np.int32)
        else:
            values = np.frombuffer(payload, dtype="<i4", offset=SAMPLES_HEADER_SIZE).astype(np.int32)
        data = values.reshape(nsamp, nch).T.copy()

        reason: str | None = None
        gap = 0
        fmt = (rate_mhz, nch, enc)
        expected = self._expected_index
        if expected is None:
            reason = "start"
        elif fmt != self._format:
            reason = "format"
        elif sample_index > expected:
            reason = "gap"
            gap = sample_index - expected
            self.stats.gaps += 1
            self.stats.gap_samples += gap
        elif sample_index < expected:
            reason = "restart"
            self.stats.restarts += 1
        if reason is not None:
            self._segment += 1
            self.stats.segments += 1
        self._expected_index = sample_index + nsamp
        self._format = fmt
        return SampleBlock(
            seq=seq, sample_index=sample_index, t0_ns=t0_ns, rate_mhz=rate_mhz, enc=enc,
            time_flags=time_flags, time_quality=time_quality, status_flags=status_flags,
            data=data, segment=self._segment, segment_reason=reason, gap_samples=gap,
            config=self.config,
        )


def decode_bytes(data: bytes, config: StreamConfig | None = None) -> tuple[list[Message], DecoderStats]:
    """Decode a complete byte string (feed + flush); for files and tests."""
    decoder = FrameDecoder(config)
    messages = decoder.feed(data)
    messages += decoder.flush()
    return messages, decoder.stats
