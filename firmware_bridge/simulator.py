"""The virtual digitizer: streams frames on a pseudo-terminal, in real time or faster.

It behaves like the field hardware: it numbers frames (``seq``), counts samples since
power-up (``sample_index``), stamps each frame with the GNSS time of its first sample, sends a
status frame every ``status_interval_s`` and logs time-keeping changes. Faults from
:class:`~firmware_bridge.faults.FaultSpec` are injected on the way out.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from firmware_bridge.encoder import FrameEncoder, max_samples_per_frame
from firmware_bridge.faults import FaultSpec
from firmware_bridge.protocol import (
    ENC_INT24,
    ENC_RANGE,
    SEQ_MODULUS,
    STATUS_CLIPPED,
    TIME_GNSS_FIX,
    TIME_PPS_LOCKED,
)
from firmware_bridge.pty_port import PtyPort


@dataclass
class SimulatorConfig:
    """How the virtual digitizer sends (speeds are multiples of real time; 0 = no pacing)."""

    frame_samples: int = 25
    enc: int = ENC_INT24
    speed: float = 1.0
    status_interval_s: float = 10.0
    #: stamp samples with the current time instead of the file's own times
    restamp_now: bool = False
    #: stop after this many seconds of stream time (None: until the source ends or stop())
    duration_s: float | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    firmware: str = "sim-1.0.0"


@dataclass
class SimulatorStats:
    """What the simulator did, to compare with what a reader saw."""

    frames_built: int = 0
    frames_written: int = 0
    #: samples per channel in frames written undamaged
    samples_written: int = 0
    dropped: int = 0
    truncated: int = 0
    bitflips: int = 0
    garbage_bytes: int = 0
    garbage_bursts: int = 0
    restarts: int = 0
    unplugs: int = 0
    lost_while_unplugged: int = 0
    stream_time_s: float = 0.0


class VirtualDigitizer:
    """Frames from ``source`` on a pty (see :class:`PtyPort`); run it with :meth:`start`."""

    def __init__(self, source, config: SimulatorConfig | None = None, link: str | None = None,
                 port: PtyPort | None = None) -> None:
        self.source = source
        self.config = config or SimulatorConfig()
        cfg = self.config
        if cfg.frame_samples < 1 or cfg.frame_samples > max_samples_per_frame(source.nch, cfg.enc):
            raise ValueError(f"frame_samples must be 1..{max_samples_per_frame(source.nch, cfg.enc)}")
        self.port = port or PtyPort(link=link)
        self.stats = SimulatorStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(cfg.faults.seed)
        self.rate_mhz = int(round(source.sampling_rate * 1000))
        seq0 = SEQ_MODULUS - 20 if cfg.faults.wrap else 0
        self.encoder = FrameEncoder(seq=seq0)
        self.finished = threading.Event()

    @property
    def path(self) -> str:
        """Path a reader opens (the stable symlink when there is one)."""
        return self.port.device_path

    # -- control --------------------------------------------------------------------------
    def start(self) -> VirtualDigitizer:
        self._thread = threading.Thread(target=self.run, name="virtual-digitizer", daemon=True)
        self._thread.start()
        return self

    def stop(self, close: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if close:
            self.port.close()

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    # -- the digitizer's main loop --------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished.set()

    def _run(self) -> None:
        cfg, faults, st = self.config, self.config.faults, self.stats
        nsamp = cfg.frame_samples
        frame_s = nsamp / self.source.sampling_rate
        start_ns = time.time_ns() if cfg.restamp_now else self.source.start_ns
        restarts = sorted(faults.restart_at)
        unplugs = sorted(faults.unplug)
        unplugged_until: float | None = None
        sample_index = 0
        total = 0  # samples since the simulator started (drives stream time)
        next_status = 0.0
        in_pps_loss = False
        pps_lost_at = 0.0
        lo, hi = ENC_RANGE[cfg.enc]
        wall0 = time.monotonic()
        while not self._stop.is_set():
            t = total / self.source.sampling_rate  # stream time of this frame's first sample
            if cfg.duration_s is not None and t >= cfg.duration_s:
                break
            block = self.source.read(nsamp)
            if block is None:
                break
            if cfg.speed > 0:
                delay = wall0 + (t + frame_s) / cfg.speed - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            # -- events of the stream timeline
            if restarts and t >= restarts[0]:
                restarts.pop(0)
                sample_index = 0
                self.encoder.seq = 0
                st.restarts += 1
                self._send(self.encoder.log("boot: digitizer restarted"))
            if unplugs and t >= unplugs[0][0] and unplugged_until is None:
                _, dur = unplugs.pop(0)
                unplugged_until = t + dur
                self.port.unplug()
                st.unplugs += 1
            if unplugged_until is not None and t >= unplugged_until:
                unplugged_until = None
                self.port.replug()
            pps_now = faults.in_pps_loss(t)
            if pps_now != in_pps_loss:
                in_pps_loss = pps_now
                pps_lost_at = t
                self._send(self.encoder.log("PPS lost, holdover" if pps_now else "PPS locked"))
            if t >= next_status:
                next_status = t + cfg.status_interval_s
                self._send(self.encoder.status({
                    "fw": cfg.firmware, "temp_c": 21.5, "supply_v": 12.3, "gain": 32,
                    "uptime_s": round(sample_index / self.source.sampling_rate, 1)}))
            # -- the sample frame
            if in_pps_loss:
                time_flags, quality = 0, max(10, 90 - int(2 * (t - pps_lost_at)))
            else:
                time_flags, quality = TIME_GNSS_FIX | TIME_PPS_LOCKED, 100
            t0_ns = start_ns + (total * 10**12) // self.rate_mhz
            status_flags = STATUS_CLIPPED if (block.min() <= lo or block.max() >= hi) else 0
            frame = self.encoder.samples(sample_index, t0_ns, self.rate_mhz, block, cfg.enc,
                                         time_flags, quality, status_flags)
            st.frames_built += 1
            sample_index += nsamp
            total += nsamp
            st.stream_time_s = total / self.source.sampling_rate
            if unplugged_until is not None:
                st.lost_while_unplugged += 1
                continue
            self._send(frame, samples=nsamp)
        self.stats.stream_time_s = total / self.source.sampling_rate

    def _send(self, frame: bytes, samples: int = 0) -> None:
        """Write one frame, passing it through the fault injector."""
        faults, st, rng = self.config.faults, self.stats, self._rng
        if not self.port.is_open:
            return
        if faults.garbage and rng.random() < faults.garbage:
            junk = bytearray(rng.randbytes(rng.randint(1, 64)))
            if rng.random() < 0.3:  # a false sync in the garbage
                k = rng.randrange(len(junk))
                junk[k:k + 2] = b"\xa5\x5a"
            st.garbage_bursts += 1
            st.garbage_bytes += len(junk)
            self.port.write(bytes(junk))
        if faults.drop and rng.random() < faults.drop:
            st.dropped += 1
            return
        data = bytearray(frame)
        if faults.bitflip and rng.random() < faults.bitflip:
            bit = rng.randrange(len(data) * 8)
            data[bit // 8] ^= 1 << (bit % 8)
            st.bitflips += 1
        elif faults.truncate and rng.random() < faults.truncate:
            data = data[:rng.randrange(1, len(data))]
            st.truncated += 1
        elif samples:
            st.samples_written += samples
        self.port.write(bytes(data))
        st.frames_written += 1
