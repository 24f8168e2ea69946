"""Constants, checksums and message types of the digitizer frame protocol, version 1.

See ``docs/spec/digitizer-frame.md``. All integers on the wire are little-endian.
"""
from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SYNC = b"\xa5\x5a"
VERSION = 1
TYPE_SAMPLES = 1
TYPE_STATUS = 2
TYPE_LOG = 3
FRAME_TYPES = (TYPE_SAMPLES, TYPE_STATUS, TYPE_LOG)
MAX_PAYLOAD = 4096
HEADER_SIZE = 12
CRC_SIZE = 4
SAMPLES_HEADER_SIZE = 28
SEQ_MODULUS = 1 << 32

ENC_INT24 = 1
ENC_INT32 = 2
ENC_INT16 = 3
#: bytes per sample for each encoding code
BYTES_PER_SAMPLE = {ENC_INT24: 3, ENC_INT32: 4, ENC_INT16: 2}
#: inclusive value range of each encoding, in counts
ENC_RANGE = {
    ENC_INT24: (-(1 << 23), (1 << 23) - 1),
    ENC_INT32: (-(1 << 31), (1 << 31) - 1),
    ENC_INT16: (-(1 << 15), (1 << 15) - 1),
}
ENC_NAMES = {ENC_INT24: "int24", ENC_INT32: "int32", ENC_INT16: "int16"}

# time_flags bits
TIME_GNSS_FIX = 0x01
TIME_PPS_LOCKED = 0x02
TIME_FROM_HOST = 0x04
# status_flags bits
STATUS_CLIPPED = 0x01
STATUS_OVERRUN = 0x02

#: header after the sync: version u8, type u8, length u16, seq u32
HEADER_STRUCT = struct.Struct("<BBHI")
#: sample payload header: sample_index u64, t0_ns i64, rate_mhz u32, nch u8, enc u8,
#: nsamp u16, time_flags u8, time_quality u8, status_flags u8, reserved u8
SAMPLES_STRUCT = struct.Struct("<QqIBBHBBBB")


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, xorout 0)."""
    return binascii.crc_hqx(data, 0xFFFF)


def crc32_iso_hdlc(data: bytes) -> int:
    """CRC-32/ISO-HDLC, the one :func:`zlib.crc32` computes."""
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class StreamConfig:
    """How the station names what the digitizer sends (it sends numbers, not names).

    ``channels`` lists the SEED channel codes in the digitizer's channel order
    (for a 3-component sensor: Z, N, E).
    """

    network: str = "XX"
    station: str = "S1"
    location: str = ""
    channels: tuple[str, ...] = ("HHZ", "HHN", "HHE")

    @classmethod
    def from_strings(cls, station: str = "XX.S1", channels: str = "HHZ,HHN,HHE",
                     location: str = "") -> StreamConfig:
        """Build from ``NET.STA`` and a comma-separated channel list."""
        if station.count(".") != 1 or not all(station.split(".")):
            raise ValueError(f"station must be NET.STA, got {station!r}")
        net, sta = station.split(".")
        chans = tuple(c.strip() for c in channels.split(",") if c.strip())
        if not chans:
            raise ValueError("at least one channel code is needed")
        return cls(network=net, station=sta, location=location, channels=chans)

    def channel_code(self, index: int) -> str:
        """SEED channel code of digitizer channel ``index`` (``CH{index}`` when unnamed)."""
        return self.channels[index] if index < len(self.channels) else f"CH{index}"

    def seed_id(self, index: int) -> str:
        """``NET.STA.LOC.CHA`` of digitizer channel ``index``."""
        return f"{self.network}.{self.station}.{self.location}.{self.channel_code(index)}"


@dataclass(slots=True)
class SampleBlock:
    """The samples of one type-1 frame, ready for ObsPy.

    ``data`` has shape ``(nch, nsamp)``, dtype int32, in raw ADC counts; row ``i`` is
    digitizer channel ``i`` (named by ``config.channels[i]``).
    """

    seq: int
    sample_index: int
    t0_ns: int
    rate_mhz: int
    enc: int
    time_flags: int
    time_quality: int
    status_flags: int
    data: np.ndarray
    #: segment number (1 for the first); a new segment starts after a gap, restart or format change
    segment: int = 1
    #: why this block starts a new segment: "start", "gap", "restart", "format" or None
    segment_reason: str | None = None
    #: samples lost right before this block (a gap); 0 when contiguous
    gap_samples: int = 0
    config: StreamConfig | None = None

    @property
    def nch(self) -> int:
        return int(self.data.shape[0])

    @property
    def nsamp(self) -> int:
        return int(self.data.shape[1])

    @property
    def sampling_rate(self) -> float:
        """Nominal sampling rate in Hz."""
        return self.rate_mhz / 1000.0

    @property
    def delta(self) -> float:
        """Sample interval in seconds."""
        return 1000.0 / self.rate_mhz

    @property
    def starttime(self):
        """Time of the first sample as :class:`obspy.UTCDateTime` (from ``t0_ns``)."""
        from obspy import UTCDateTime

        return UTCDateTime(ns=self.t0_ns)

    @property
    def end_sample_index(self) -> int:
        """Index of the sample after the last one of this block."""
        return self.sample_index + self.nsamp

    @property
    def gnss_fix(self) -> bool:
        return bool(self.time_flags & TIME_GNSS_FIX)

    @property
    def pps_locked(self) -> bool:
        return bool(self.time_flags & TIME_PPS_LOCKED)

    @property
    def time_from_host(self) -> bool:
        return bool(self.time_flags & TIME_FROM_HOST)

    @property
    def clipped(self) -> bool:
        return bool(self.status_flags & STATUS_CLIPPED)

    @property
    def overrun(self) -> bool:
        return bool(self.status_flags & STATUS_OVERRUN)

    def to_stream(self, config: StreamConfig | None = None):
        """One :class:`obspy.Trace` per channel, in counts, as an :class:`obspy.Stream`."""
        from obspy import Stream, Trace

        cfg = config or self.config or StreamConfig()
        start = self.starttime
        traces = []
        for i in range(self.nch):
            tr = Trace(data=np.ascontiguousarray(self.data[i]))
            tr.stats.network = cfg.network
            tr.stats.station = cfg.station
            tr.stats.location = cfg.location
            tr.stats.channel = cfg.channel_code(i)
            tr.stats.sampling_rate = self.sampling_rate
            tr.stats.starttime = start
            tr.stats.timing_quality = self.time_quality
            traces.append(tr)
        return Stream(traces)


@dataclass(slots=True)
class StatusMessage:
    """A type-2 frame: the digitizer's JSON status object (unknown keys kept)."""

    seq: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LogMessage:
    """A type-3 frame: one log line from the firmware (UTF-8; bad bytes shown as U+FFFD)."""

    seq: int
    text: str = ""
