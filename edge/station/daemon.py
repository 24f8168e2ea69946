"""``microseis run``: the station daemon -- source -> :class:`edge.station.pipeline.EventPipeline` ->
MQTT (durable outbox) -- with health, model updates over MQTT, commands, the archive and the
systemd watchdog.

Threads: the main loop reads the source and runs the pipeline (trigger, classification,
publishing to the outbox); paho-mqtt's network thread sends and receives. Commands and pushed
bundles arriving on the network thread go to the :class:`edge.station.commands.CommandDesk`:
checked against the operators' keys (:mod:`edge.comms.auth`), rate-limited and run on its
worker thread, never on the sample path. A new model (push, rollback) is verified and loaded
there; the main loop only swaps the finished classifier in between chunks, so the model is
never swapped in the middle of a chunk and the loop never waits for a command.
"""
from __future__ import annotations

import logging
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obspy import UTCDateTime

from edge.comms.auth import Authenticator, Command, Push
from edge.comms.messages import Health, ModelState, dumps, iso_utc
from edge.comms.mqtt_link import MqttLink
from edge.comms.outbox import Outbox
from edge.comms.topics import Topics
from edge.model.format import INSTALLED_BUNDLE_NAME, BundleError
from edge.model.inference import EventClassifier
from edge.model.install import install_bundle, rollback
from edge.model.keys import default_trusted_keys, load_trusted_keys
from edge.model.manifest import StationCompat
from edge.station.archive import SdsArchive
from edge.station.assemble import (
    SetupError,
    build_pipeline,
    load_classifier,
    open_bundle,
    read_station_inventory,
    station_compat,
    trigger_setup,
)
from edge.station.commands import CommandDesk
from edge.station.config import load_config
from edge.station.input import Chunk, LinkCounters, LinkNote, replay_chunks, serial_chunks
from edge.station.sd_notify import Notifier
from edge.trigger.stream import StreamingTrigger
from firmware_bridge.faults import FaultSpec
from firmware_bridge.simulator import SimulatorConfig, VirtualDigitizer
from firmware_bridge.sources import NoiseSource, source_from_files

__all__ = ["Daemon", "DaemonError", "ProcessStats"]

log = logging.getLogger(__name__)


#: The daemon cannot start (bad model, unreadable files); the message says why.
DaemonError = SetupError


@dataclass
class ProcessStats:
    """Process figures for the health message."""

    started: float = field(default_factory=time.time)
    _cpu0: float = field(default_factory=lambda: sum(os.times()[:2]))
    _wall0: float = field(default_factory=time.monotonic)

    def cpu_percent(self) -> float:
        """CPU use of this process since the last call (% of one core)."""
        cpu, wall = sum(os.times()[:2]), time.monotonic()
        pct = 100.0 * (cpu - self._cpu0) / max(wall - self._wall0, 1e-6)
        self._cpu0, self._wall0 = cpu, wall
        return round(pct, 1)

    @staticmethod
    def _status_mb(key: str) -> float | None:
        """A ``kB`` line of /proc/self/status (``VmRSS``, ``VmHWM``) in MB (1 MB = 1024 kB)."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return round(int(line.split()[1]) / 1024.0, 1)
        except (OSError, ValueError, IndexError):
            pass
        return None

    @classmethod
    def rss_mb(cls) -> float:
        """Resident memory now (MB): the kernel's VmRSS (what ``ps``/``top`` show)."""
        now = cls._status_mb("VmRSS")
        return now if now is not None else cls.rss_peak_mb()

    @classmethod
    def rss_peak_mb(cls) -> float:
        """Peak resident memory since start (MB): VmHWM (getrusage's ru_maxrss without /proc)."""
        peak = cls._status_mb("VmHWM")
        return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class _LinkPublisher:
    """Adapts the MQTT link to the pipeline's :class:`~edge.station.pipeline.Publisher`."""

    def __init__(self, link, on_end: Callable[[dict], None] | None = None) -> None:
        self.link = link
        self.on_end = on_end

    def event_new(self, msg: dict[str, Any]) -> None:
        self.link.publish_event_new(msg)

    def event_end(self, msg: dict[str, Any]) -> None:
        self.link.publish_event_end(msg)
        if self.on_end:
            self.on_end(msg)


class Daemon:
    """The station. ``Daemon(config).run()`` until SIGTERM/SIGINT or :meth:`stop`.

    Args:
        config: :class:`edge.station.config.StationConfig`.
        source: optional iterator of chunks/notes replacing the configured source (tests,
            ``microseis demo``).
        on_end: called with every ``end`` message (``demo`` prints them).
        check_only: validate and write nothing (``microseis run --check``): the model bundle,
            the StationXML and the trigger settings are loaded, the folders the station would
            create are only checked for being creatable; no state folder, archive, outbox or
            MQTT link is opened. Such a daemon cannot :meth:`run`.
    """

    #: while the outbox cannot write, retry writing its in-memory backlog this often (s)
    OUTBOX_RETRY_S = 2.0

    def __init__(self, config, source: Iterator[Chunk | LinkNote] | None = None,
                 on_end: Callable[[dict], None] | None = None, install_signals: bool = True,
                 check_only: bool = False) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.counters = LinkCounters()
        self.notifier = Notifier()
        self.process = ProcessStats()
        #: (classifier, model result) loaded by the command worker, swapped in by the main loop
        self._swaps: queue.Queue[tuple[EventClassifier, dict[str, Any]]] = queue.Queue()
        #: (bundle sha256, monotonic deadline) a signed downgrade command allowed once
        self._downgrade: tuple[str, float] | None = None
        self.desk: CommandDesk | None = None
        self._source_override = source
        self._on_end = on_end
        self._install_signals = install_signals
        self.station = config.station.id
        st = config.state
        self.state_dir = Path(st.dir)
        self.models_dir = Path(config.model.models_dir or self.state_dir / "models")
        self.last_model_result: dict[str, Any] = {"status": "ok", "message": "started"}
        #: messages still in the outbox when :meth:`run` returned (None before)
        self.outbox_depth_at_exit: int | None = None
        self._next_outbox_retry = 0.0
        self.check_only = check_only
        self._prepare()
        if check_only:
            self._check_writable()
        else:
            self._open()

    # ------------------------------------------------------------------ setup
    def _trusted_keys(self):
        keys = self.config.model.trusted_keys
        return load_trusted_keys(keys) if keys else default_trusted_keys()

    def _compat(self) -> StationCompat:
        return station_compat(self.config)

    def _open_bundle(self, path: Path | str | None) -> EventClassifier:
        """Verify and load a bundle (None: the shipped default) the way this station runs it."""
        return open_bundle(self.config, path)

    def _prepare(self) -> None:
        """Everything that reads and validates but writes nothing: model, StationXML, trigger."""
        cfg = self.config
        if self._source_override is None and cfg.source.kind in ("replay", "simulate"):
            if cfg.source.kind == "replay" and not cfg.source.files:
                raise DaemonError("[source] files: a replay needs at least one waveform file")
            for f in cfg.source.files:
                if not Path(f).is_file():
                    raise DaemonError(f"[source] files: no such file {f}")
        self.classifier = load_classifier(cfg, self.models_dir)
        if self.classifier.info.synthetic:
            log.warning("model %s %s was trained on SYNTHETIC data: re-train or fine-tune it on this "
                        "site's labeled events", self.classifier.info.name, self.classifier.info.version)
        self._inventory = read_station_inventory(cfg)
        trigger_cfg, self.warnings = trigger_setup(cfg, self.classifier)
        for w in self.warnings:
            log.warning("%s", w)
        self._trigger = StreamingTrigger(trigger_cfg)

    def _state_paths(self) -> list[tuple[str, Path]]:
        """(config key, path) of every file or folder the station creates when it starts."""
        cfg = self.config
        paths = [("state.dir", self.state_dir),
                 ("state.outbox", Path(cfg.state.outbox or self.state_dir / "outbox.sqlite"))]
        if cfg.archive.enabled:
            paths.append(("archive.path", Path(cfg.archive.path or self.state_dir / "archive")))
        return paths

    def _check_writable(self) -> None:
        """Raise :class:`DaemonError` when a path of :meth:`_state_paths` could not be created
        or written; looks only (the nearest existing folder above a missing path)."""
        for key, path in self._state_paths():
            is_file = key == "state.outbox"
            if path.exists():
                if path.is_dir() == is_file:
                    raise DaemonError(f"{key} {path}: exists and is {'a' if is_file else 'not a'} folder")
                target = path.parent if is_file else path
            else:
                target = path.parent
                while not target.exists() and target != target.parent:
                    target = target.parent
                if not target.is_dir():
                    raise DaemonError(f"{key} {path}: cannot be created ({target} is not a folder)")
            if not os.access(target, os.W_OK | os.X_OK):
                raise DaemonError(f"{key} {path}: cannot be written ({target} is not writable)")

    def _open(self) -> None:
        """Create the state folder, the archive, the outbox, the MQTT link and the pipeline."""
        cfg = self.config
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.archive = None
        if cfg.archive.enabled:
            self.archive = SdsArchive(cfg.archive.path or self.state_dir / "archive",
                                      retention_days=cfg.archive.retention_days,
                                      max_disk_fraction=cfg.archive.max_disk_fraction)
        outbox_path = cfg.state.outbox or self.state_dir / "outbox.sqlite"
        # a full disk: the archive gives way first (alerts wait in memory meanwhile)
        self.outbox = Outbox(outbox_path, on_full=self._make_room)
        self.link = MqttLink(cfg.mqtt, self.station, self.outbox) if cfg.mqtt.enabled else None
        if self.link is not None:
            publisher = _LinkPublisher(self.link, self._on_end)
        else:
            publisher = _OfflinePublisher(self.outbox, Topics.of(cfg.mqtt.prefix, self.station).events,
                                          cfg.mqtt.qos, self._on_end)
        self.pipeline = build_pipeline(cfg, self.station, self.classifier, publisher, self._inventory,
                                       archive=self.archive, trigger=self._trigger)
        if self.link is not None:
            self.desk = CommandDesk(
                self._authenticator(),
                {"health": self._cmd_health, "rollback": self._cmd_rollback, "reload": self._cmd_reload,
                 "downgrade": self._cmd_downgrade},
                self._apply_push, self.link.respond, self._report_push,
                rate=cfg.auth.rate_per_s, burst=cfg.auth.burst)
            self.link.on_command = self.desk.on_command
            self.link.on_model_push = self.desk.on_push

    def _authenticator(self) -> Authenticator:
        a = self.config.auth
        keys_dir = Path(a.keys_dir)
        try:
            keys = load_trusted_keys([keys_dir]) if keys_dir.is_dir() else {}
        except ValueError as exc:
            raise DaemonError(f"[auth] keys_dir: {exc}") from None
        if not keys and not a.allow_unsigned:
            log.warning("no operator keys in %s ([auth] keys_dir): every command and model push "
                        "will be refused", keys_dir)
        return Authenticator(self.station, keys, self.state_dir / "auth-replay.json", window_s=a.window_s,
                             allow_unsigned=a.allow_unsigned)

    def _make_room(self) -> None:
        """The outbox cannot write: free disk space by pruning the oldest archive day-files."""
        if self.archive is not None:
            self.archive.make_room()

    # ------------------------------------------------------------------ source
    def _source(self) -> Iterator[Chunk | LinkNote]:
        if self._source_override is not None:
            return self._source_override
        s = self.config.source
        net, sta = self.station.split(".")
        if s.kind == "serial":
            return serial_chunks(s.port, s.baud, net, sta, self.config.station.location,
                                 self.config.station.channels, self.stop_event, self.counters)
        if s.kind == "replay":
            from obspy import Stream, read

            stream = Stream()
            for f in s.files:  # read up front: an unreadable file is a one-line error, not a traceback
                try:
                    stream += read(str(f))
                except Exception as exc:  # noqa: BLE001 -- name the file, not ObsPy's internals
                    raise DaemonError(f"[source] files: cannot read {f}: {exc}") from None
            if not len(stream):
                raise DaemonError(f"[source] files: no waveform data in {', '.join(map(str, s.files))}")
            return replay_chunks(s.files, s.speed, self.stop_event, stream=stream)
        if s.kind == "simulate":
            return self._simulated()
        raise DaemonError(f"[source] kind {s.kind!r} unknown")

    def _simulated(self) -> Iterator[Chunk | LinkNote]:
        """The virtual digitizer on a pseudo-terminal, read through the real serial path."""
        s = self.config.source
        src = source_from_files(list(s.files)) if s.files else NoiseSource(self.config.station.sampling_rate)
        faults = FaultSpec.parse(s.faults) if s.faults else FaultSpec()
        # speed 0 = no pacing: as fast as the serial reader takes the frames (not real time)
        sim = VirtualDigitizer(src, SimulatorConfig(speed=float(s.speed), faults=faults,
                                                    restamp_now=not s.files))
        sim.start()
        # with waveform files the virtual digitizer stops at their end: read on for a moment
        # (what is still in the pty), then end like a replay
        done = threading.Event()

        def watch() -> None:
            while not self.stop_event.is_set():
                if s.files and sim.wait(0.2):
                    time.sleep(1.0)
                    break
                time.sleep(0.05)
            done.set()

        threading.Thread(target=watch, name="sim-watch", daemon=True).start()
        try:
            net, sta = self.station.split(".")
            yield from serial_chunks(sim.path, s.baud, net, sta, self.config.station.location,
                                     self.config.station.channels, done, self.counters)
        finally:
            sim.stop()
        if not self.stop_event.is_set():
            yield LinkNote("end", "virtual digitizer finished its files")

    # ------------------------------------------------------------------ run
    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> int:
        """The main loop; returns the exit status (0 after a clean stop)."""
        if self.check_only:
            raise DaemonError("a daemon made with check_only=True cannot run")
        if self._install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        source = self._source()  # DaemonError (exit 2) before anything is published
        if self.link is not None:
            self.desk.start()
            self.link.connect()
            self._publish_model()
        self.notifier.ready(f"station {self.station}: model {self.classifier.info.name} "
                            f"{self.classifier.info.version}")
        interval = float(self.config.health.interval_s)
        next_health = time.monotonic() + min(5.0, interval)
        try:
            for item in source:
                if isinstance(item, Chunk):
                    self.pipeline.process(item)
                elif isinstance(item, LinkNote):
                    self._note(item)
                    if item.kind == "end":
                        break
                self._service()
                if time.monotonic() >= next_health:
                    self.publish_health()
                    next_health = time.monotonic() + float(self.config.health.interval_s)  # reload may change it
                if self.stop_event.is_set():
                    break
            self.pipeline.flush()
        finally:
            self.notifier.stopping()
            if self.archive is not None:
                try:
                    self.archive.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("archive: %s", exc)
            if self.link is not None:
                self.desk.stop()
                self.publish_health()
                self.link.stop()
            self.outbox_depth_at_exit = self.outbox.depth()
            self.outbox.close()
        return 0

    def _service(self) -> None:
        """Per-loop chores: watchdog, stale events, a model the command worker loaded, the outbox's
        backlog."""
        self.notifier.watchdog()
        self.pipeline.tick()
        if self.outbox.disk_full and time.monotonic() >= self._next_outbox_retry:
            self._next_outbox_retry = time.monotonic() + self.OUTBOX_RETRY_S
            self.outbox.retry()
        while True:
            try:
                classifier, result = self._swaps.get_nowait()
            except queue.Empty:
                break
            self.classifier = classifier
            self.pipeline.classifier = classifier
            self.last_model_result = result
            self._publish_model()

    def _note(self, note: LinkNote) -> None:
        if note.kind in ("disconnected", "open_failed"):
            log.warning("digitizer: %s", note.message)
        elif note.kind in ("gap", "restart"):
            log.info("digitizer %s: %s", note.kind, note.message)

    # ------------------------------------------------------------------ health, model, commands
    def health_payload(self) -> dict[str, Any]:
        p = self.pipeline
        up = time.time() - self.process.started
        return Health(
            time=iso_utc(UTCDateTime()), station=self.station, uptime_s=round(up, 1),
            samples_per_s=round(p.samples / max(up, 1e-6), 1), gaps=self.counters.gaps,
            crc_errors=self.counters.crc_errors, outbox_depth=self.outbox.depth(),
            model_version=self.classifier.info.version, cpu_percent=self.process.cpu_percent(),
            rss_mb=self.process.rss_mb(),
            last_event_time=iso_utc(p.last_event_time) if p.last_event_time else None,
            warnings=list(self.warnings) or None,
            extra={"samples": p.samples, "restarts": self.counters.restarts,
                   "disconnects": self.counters.disconnects, "model_name": self.classifier.info.name,
                   "events": p.events_ended, "open_events": len(p.open),
                   "rss_peak_mb": self.process.rss_peak_mb(), "disk_full": self.outbox.disk_full,
                   "outbox_backlog": self.outbox.backlog, "outbox_dropped": self.outbox.dropped},
        ).to_dict()

    def publish_health(self) -> None:
        if self.link is not None:
            self.link.publish_health(self.health_payload())
        if self.archive is not None:
            try:
                self.archive.prune(UTCDateTime())
            except Exception as exc:  # noqa: BLE001
                log.warning("archive prune: %s", exc)

    def _publish_model(self) -> None:
        info = self.classifier.info
        payload = ModelState(info.name, info.version, info.sha256, list(self.classifier.classes),
                             self.last_model_result,
                             extra={"file": info.file, "precision": info.precision,
                                    "runtime": self.classifier.runtime, "synthetic": info.synthetic}).to_dict()
        if self.link is not None:
            self.link.publish_model(payload)

    # ------------------------------------------------------------------ command worker thread
    def _load_installed(self, model_dir: Path, result: dict[str, Any]) -> None:
        """Verify and load the bundle installed in ``model_dir`` (slow: on the worker) and hand
        it to the main loop, which swaps it in and publishes ``result`` on the model topic."""
        self._swaps.put((self._open_bundle(model_dir / INSTALLED_BUNDLE_NAME),
                         dict(result, time=iso_utc(UTCDateTime()))))

    def _report_push(self, result: dict[str, Any]) -> None:
        """A push that changed no model: its verdict on the retained model topic."""
        self.last_model_result = dict(result, time=iso_utc(UTCDateTime()))
        self._publish_model()

    def _apply_push(self, push: Push) -> dict[str, Any] | None:
        """Install an authenticated push; None when the main loop reports (a model swap)."""
        info = self.classifier.info
        allow = None
        if self._downgrade is not None and self._downgrade[0] == push.sha256 \
                and time.monotonic() < self._downgrade[1]:
            allow = push.sha256
        try:
            new_dir = install_bundle(push.bundle, self.models_dir, self._trusted_keys(), self._compat(),
                                     running=(info.version, info.identity), allow_downgrade=allow)
            if allow:
                self._downgrade = None  # once
            self._load_installed(new_dir, {"status": "ok", "result": "installed", "push": push.nonce,
                                           "message": f"installed {new_dir.name}"})
        except BundleError as exc:
            if exc.code == "already_installed":
                return {"status": "ok", "result": "already installed", "message": str(exc), "push": push.nonce}
            log.warning("model update rejected: %s", exc)
            return {"status": "error", "result": "refused", "message": f"rejected: {exc}", "push": push.nonce}
        except OSError as exc:
            return {"status": "error", "result": "refused", "message": f"rejected: {exc}", "push": push.nonce}
        log.info("model update: installed %s (push %s, key %s)", new_dir.name, push.nonce, push.key_id)
        return None

    def _cmd_health(self, cmd: Command) -> dict[str, Any]:
        payload = self.health_payload()
        self.link.publish_health(payload)
        return payload

    def _cmd_rollback(self, cmd: Command) -> dict[str, Any]:
        prev = rollback(self.models_dir)
        self._load_installed(prev, {"status": "ok", "result": "rolled back",
                                    "message": f"rolled back to {prev.name}"})
        return {"model": prev.name}

    def _cmd_reload(self, cmd: Command) -> dict[str, Any]:
        if getattr(self.config, "source_path", None) is None:
            return {"reloaded": False, "note": "no configuration file"}
        new = load_config(self.config.source_path)
        self.config.health.interval_s = new.health.interval_s
        return {"reloaded": True, "note": "health interval applied; restart for other changes"}

    def _cmd_downgrade(self, cmd: Command) -> dict[str, Any]:
        window = float(self.config.auth.window_s)
        self._downgrade = (cmd.args["sha256"], time.monotonic() + window)
        return {"allowed": cmd.args["sha256"], "version": cmd.args.get("version"), "valid_s": window,
                "note": "the next push of this bundle may install an older version, once"}


class _OfflinePublisher:
    """``[mqtt] enabled = false``: ``new`` goes to the log; every ``end`` is kept in the
    durable outbox under its events topic, so a later start with MQTT on delivers it."""

    def __init__(self, outbox, topic: str, qos: int, on_end=None) -> None:
        self.outbox, self.topic, self.qos, self.on_end = outbox, topic, max(1, int(qos)), on_end

    def event_new(self, msg: dict[str, Any]) -> None:
        log.info("new %s (offline)", msg["id"])

    def event_end(self, msg: dict[str, Any]) -> None:
        self.outbox.put(self.topic, dumps(msg).encode("utf-8"), str(msg["id"]), qos=self.qos)
        if self.on_end:
            self.on_end(msg)
