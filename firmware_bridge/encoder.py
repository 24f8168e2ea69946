"""Python encoder of digitizer frames (used by the virtual digitizer and the tests).

The firmware-side twin is ``firmware_bridge/c/microseis_frame.c``; both must produce the
bytes of ``firmware_bridge/spec/vectors.json`` exactly.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from firmware_bridge.protocol import (
    BYTES_PER_SAMPLE,
    ENC_INT16,
    ENC_INT24,
    ENC_INT32,
    ENC_RANGE,
    FRAME_TYPES,
    HEADER_STRUCT,
    MAX_PAYLOAD,
    SAMPLES_HEADER_SIZE,
    SAMPLES_STRUCT,
    SEQ_MODULUS,
    SYNC,
    TYPE_LOG,
    TYPE_SAMPLES,
    TYPE_STATUS,
    VERSION,
    crc16_ccitt_false,
    crc32_iso_hdlc,
)


def encode_frame(frame_type: int, seq: int, payload: bytes) -> bytes:
    """Wrap ``payload`` in a frame: sync, header, header CRC-16, payload, CRC-32."""
    if frame_type not in FRAME_TYPES:
        raise ValueError(f"unknown frame type {frame_type}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    header = HEADER_STRUCT.pack(VERSION, frame_type, len(payload), seq % SEQ_MODULUS)
    hcrc = crc16_ccitt_false(header).to_bytes(2, "little")
    body = header + hcrc + payload
    return SYNC + body + crc32_iso_hdlc(body).to_bytes(4, "little")


def max_samples_per_frame(nch: int, enc: int) -> int:
    """Largest ``nsamp`` that fits a 4096-byte payload."""
    return (MAX_PAYLOAD - SAMPLES_HEADER_SIZE) // (nch * BYTES_PER_SAMPLE[enc])


def encode_sample_values(samples: np.ndarray, enc: int) -> bytes:
    """Interleaved little-endian sample bytes of ``samples`` (shape ``(nsamp, nch)``, counts)."""
    lo, hi = ENC_RANGE[enc]
    values = np.asarray(samples, dtype=np.int64)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"sample values outside the {lo}..{hi} range of encoding {enc}")
    if enc == ENC_INT32:
        return values.astype("<i4").tobytes()
    if enc == ENC_INT16:
        return values.astype("<i2").tobytes()
    # int24: low three bytes of each little-endian int32
    return values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def encode_samples_payload(
    sample_index: int,
    t0_ns: int,
    rate_mhz: int,
    samples: np.ndarray,
    enc: int = ENC_INT24,
    time_flags: int = 0,
    time_quality: int = 0,
    status_flags: int = 0,
) -> bytes:
    """Payload of a type-1 frame.

    ``samples`` is an integer array of shape ``(nsamp, nch)`` in counts (one row per sample,
    as in ``vectors.json``).
    """
    values = np.asarray(samples)
    if values.ndim != 2 or values.shape[0] < 1 or not 1 <= values.shape[1] <= 8:
        raise ValueError(f"samples must have shape (nsamp>=1, nch 1..8), got {values.shape}")
    if enc not in BYTES_PER_SAMPLE:
        raise ValueError(f"unknown sample encoding {enc}")
    nsamp, nch = values.shape
    head = SAMPLES_STRUCT.pack(sample_index, t0_ns, rate_mhz, nch, enc, nsamp,
                               time_flags, time_quality, status_flags, 0)
    return head + encode_sample_values(values, enc)


def encode_status_payload(fields: dict[str, Any]) -> bytes:
    """Payload of a type-2 frame: compact UTF-8 JSON."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class FrameEncoder:
    """Stateful encoder that numbers frames like a digitizer: ``seq`` +1 per frame of any type."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq % SEQ_MODULUS

    def _next(self, frame_type: int, payload: bytes) -> bytes:
        frame = encode_frame(frame_type, self.seq, payload)
        self.seq = (self.seq + 1) % SEQ_MODULUS
        return frame

    def samples(self, sample_index: int, t0_ns: int, rate_mhz: int, samples: np.ndarray,
                enc: int = ENC_INT24, time_flags: int = 0, time_quality: int = 0,
                status_flags: int = 0) -> bytes:
        """A type-1 frame; ``samples`` has shape ``(nsamp, nch)`` in counts."""
        return self._next(TYPE_SAMPLES, encode_samples_payload(
            sample_index, t0_ns, rate_mhz, samples, enc, time_flags, time_quality, status_flags))

    def status(self, fields: dict[str, Any]) -> bytes:
        """A type-2 frame carrying ``fields`` as JSON."""
        return self._next(TYPE_STATUS, encode_status_payload(fields))

    def log(self, text: str) -> bytes:
        """A type-3 frame carrying one UTF-8 log message."""
        return self._next(TYPE_LOG, text.encode("utf-8"))


__all__ = [
    "ENC_INT16",
    "ENC_INT24",
    "ENC_INT32",
    "FrameEncoder",
    "encode_frame",
    "encode_sample_values",
    "encode_samples_payload",
    "encode_status_payload",
    "max_samples_per_frame",
]
