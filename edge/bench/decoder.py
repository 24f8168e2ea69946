"""Throughput of the digitizer-link decoder (``firmware_bridge.decoder.FrameDecoder``):
realistic sample frames from the Python encoder, fed in read-sized chunks.
``bench/decoder_throughput.py`` (garbage, byte-at-a-time, several repeats) builds on these."""
from __future__ import annotations

import time

import numpy as np

from firmware_bridge.decoder import FrameDecoder
from firmware_bridge.encoder import FrameEncoder
from firmware_bridge.protocol import ENC_NAMES, ENC_RANGE, StreamConfig

__all__ = ["ENC_CODES", "T0_NS", "build_frames", "decode_once", "decoder_mb_per_s"]

ENC_CODES = {name: code for code, name in ENC_NAMES.items()}
T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def build_frames(count: int, nsamp: int, nch: int, enc: int, rate_hz: float,
                 rng: np.random.Generator) -> list[bytes]:
    """``count`` consecutive sample frames as a digitizer sends them (random counts within
    the range of encoding ``enc``)."""
    lo, hi = ENC_RANGE[enc]
    rate_mhz = int(round(rate_hz * 1000))
    encoder = FrameEncoder(seq=int(rng.integers(0, 2**32)))
    values = rng.integers(lo, hi, size=(count, nsamp, nch), endpoint=True)
    frames = []
    for i in range(count):
        index = i * nsamp
        frames.append(encoder.samples(index, T0_NS + index * 10**12 // rate_mhz, rate_mhz,
                                      values[i], enc=enc, time_flags=3, time_quality=100))
    return frames


def decode_once(chunks: list[bytes], config: StreamConfig) -> tuple[float, FrameDecoder, int]:
    """Feed ``chunks`` to a fresh decoder, then flush: (seconds, the decoder, frames delivered)."""
    decoder = FrameDecoder(config)
    feed = decoder.feed
    delivered = 0
    start = time.perf_counter()
    for chunk in chunks:
        delivered += len(feed(chunk))
    delivered += len(decoder.flush())
    return time.perf_counter() - start, decoder, delivered


def decoder_mb_per_s(frames: int = 20_000, nsamp: int = 25, nch: int = 3, chunk: int = 4096,
                     repeat: int = 3, seed: int = 0) -> dict[str, float | int]:
    """Best-of-``repeat`` decode rate of ``frames`` int24 frames of ``nch`` x ``nsamp``
    samples fed ``chunk`` bytes at a time: ``{"mb_per_s", "msamples_per_s", "frames", ...}``.

    Raises:
        RuntimeError: the decoder did not deliver every frame (a broken decode is no benchmark).
    """
    rng = np.random.default_rng(seed)
    stream = b"".join(build_frames(frames, nsamp, nch, ENC_CODES["int24"], 250.0, rng))
    chunks = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]
    best = float("inf")
    for _ in range(max(1, repeat)):
        dt, decoder, delivered = decode_once(chunks, StreamConfig())
        if delivered != frames or decoder.stats.crc_errors:
            raise RuntimeError(f"decoder check failed: {delivered} of {frames} frames, {decoder.stats}")
        best = min(best, dt)
    return {"mb_per_s": round(len(stream) / best / 1e6, 2),
            "msamples_per_s": round(frames * nsamp * nch / best / 1e6, 3),
            "frames": frames, "bytes": len(stream), "chunk_bytes": chunk, "seconds": round(best, 4)}
