"""What the person installing a station wants to see: is the digitizer link healthy?

:class:`LinkMonitor` takes the decoder's messages and the reader's link events and keeps
per-channel figures (samples, nominal and measured rate, time quality, clipping) next to the
decoder's error counters. :meth:`summary` is the JSON object of ``microseis link --json``;
:meth:`table` is the live view.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.decoder import DecoderStats
from firmware_bridge.protocol import LogMessage, SampleBlock, StatusMessage, StreamConfig
from firmware_bridge.serial_reader import LinkEvent, ReaderStats

#: keys of ``link --json`` that scripts rely on (docs/spec/cli.md), all from DecoderStats
SUMMARY_KEYS = ("frames", "samples", "crc_errors", "header_errors", "skipped_bytes",
                "lost_frames", "gaps", "segments")


@dataclass
class ChannelStats:
    seed_id: str
    samples: int = 0
    #: samples after the first block (the measured rate counts from the first block's arrival)
    rate_samples: int = 0
    nominal_rate_hz: float = 0.0
    first_wall: float | None = None
    last_wall: float | None = None
    time_quality_last: int | None = None
    time_quality_min: int | None = None
    frames_without_pps: int = 0
    clipped_frames: int = 0
    overrun_frames: int = 0

    def measured_rate_hz(self) -> float | None:
        """Samples per second of wall-clock time since the first sample of this channel."""
        if self.first_wall is None or self.last_wall is None or self.last_wall <= self.first_wall:
            return None
        return self.rate_samples / (self.last_wall - self.first_wall)


@dataclass
class LinkMonitor:
    config: StreamConfig = field(default_factory=StreamConfig)
    channels: dict[int, ChannelStats] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    logs: deque = field(default_factory=lambda: deque(maxlen=10))
    events: deque = field(default_factory=lambda: deque(maxlen=10))
    started: float = field(default_factory=time.time)
    first_time: str | None = None
    last_time: str | None = None

    def add(self, item, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if isinstance(item, SampleBlock):
            self._block(item, now)
        elif isinstance(item, StatusMessage):
            self.status = dict(item.fields)
        elif isinstance(item, LogMessage):
            self.logs.append(item.text)
        elif isinstance(item, LinkEvent):
            self.events.append(f"{time.strftime('%H:%M:%S', time.gmtime(item.time))} {item.message}")

    def _block(self, block: SampleBlock, now: float) -> None:
        n = block.nsamp
        for i in range(block.nch):
            ch = self.channels.get(i)
            if ch is None:
                ch = self.channels[i] = ChannelStats(seed_id=self.config.seed_id(i))
            ch.samples += n
            if ch.first_wall is None:
                ch.first_wall = now
            else:
                ch.rate_samples += n
            ch.last_wall = now
            ch.nominal_rate_hz = block.sampling_rate
            q = block.time_quality
            ch.time_quality_last = q
            ch.time_quality_min = q if ch.time_quality_min is None else min(ch.time_quality_min, q)
            if not block.pps_locked:
                ch.frames_without_pps += 1
            if block.clipped:
                ch.clipped_frames += 1
            if block.overrun:
                ch.overrun_frames += 1
        if self.first_time is None:
            self.first_time = str(block.starttime)
        end_ns = block.t0_ns + (block.nsamp * 10**12) // block.rate_mhz
        self.last_time = _iso_ns(end_ns)

    def summary(self, decoder: DecoderStats, reader: ReaderStats | None = None,
                port: str | None = None) -> dict[str, Any]:
        """The ``link --json`` object: decoder counters, per-channel figures, link events."""
        out: dict[str, Any] = {"port": port}
        out.update(decoder.as_dict())
        out["channels"] = {
            ch.seed_id: {
                "samples": ch.samples,
                "nominal_rate_hz": ch.nominal_rate_hz,
                "measured_rate_hz": _round(ch.measured_rate_hz()),
                "time_quality": ch.time_quality_last,
                "time_quality_min": ch.time_quality_min,
                "frames_without_pps": ch.frames_without_pps,
                "clipped_frames": ch.clipped_frames,
                "overrun_frames": ch.overrun_frames,
            }
            for _, ch in sorted(self.channels.items())
        }
        out["first_sample_time"] = self.first_time
        out["last_sample_time"] = self.last_time
        out["status"] = self.status
        out["last_logs"] = list(self.logs)
        if reader is not None:
            out["connects"] = reader.connects
            out["disconnects"] = reader.disconnects
            out["open_failures"] = reader.open_failures
            out["outage_s"] = round(sum(b - a for a, b in reader.outages), 3)
        out["elapsed_s"] = round(time.time() - self.started, 3)
        return out

    def table(self, decoder: DecoderStats, reader: ReaderStats | None = None,
              port: str | None = None) -> str:
        """A readable multi-line report (the live view and the final report)."""
        s = self.summary(decoder, reader, port)
        lines = [f"digitizer link {port or ''}  ({s['elapsed_s']:.0f} s)   "
                 f"data {s['first_sample_time'] or '-'} .. {s['last_sample_time'] or '-'}"]
        lines.append(f"{'channel':<18}{'samples':>10}{'rate Hz':>10}{'measured':>10}"
                     f"{'tq':>5}{'tq min':>7}{'no PPS':>8}{'clipped':>8}")
        for sid, ch in s["channels"].items():
            mr = ch["measured_rate_hz"]
            lines.append(f"{sid:<18}{ch['samples']:>10}{ch['nominal_rate_hz']:>10.2f}"
                         f"{(f'{mr:.2f}' if mr is not None else '-'):>10}"
                         f"{_dash(ch['time_quality']):>5}{_dash(ch['time_quality_min']):>7}"
                         f"{ch['frames_without_pps']:>8}{ch['clipped_frames']:>8}")
        if not s["channels"]:
            lines.append("(no samples yet)")
        lines.append(
            f"frames {s['frames']}  lost {s['lost_frames']}  gaps {s['gaps']} ({s['gap_samples']} samples)  "
            f"segments {s['segments']}  restarts {s['restarts']}")
        lines.append(
            f"crc errors {s['crc_errors']}  header errors {s['header_errors']}  "
            f"malformed {s['malformed_frames']}  truncated {s['truncated_frames']}  "
            f"skipped bytes {s['skipped_bytes']}")
        if reader is not None:
            lines.append(f"connects {s['connects']}  disconnects {s['disconnects']}  "
                         f"open failures {s['open_failures']}  outage {s['outage_s']:.1f} s")
        if s["status"]:
            lines.append("status " + " ".join(f"{k}={v}" for k, v in s["status"].items()))
        for text in s["last_logs"][-3:]:
            lines.append(f"log: {text}")
        for text in list(self.events)[-3:]:
            lines.append(f"link: {text}")
        return "\n".join(lines)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _dash(x) -> str:
    return "-" if x is None else str(x)


def _iso_ns(ns: int) -> str:
    from obspy import UTCDateTime

    return str(UTCDateTime(ns=ns))
