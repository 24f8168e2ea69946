"""``microseis run``: the station daemon -- source -> :class:`edge.station.pipeline.EventPipeline` ->
MQTT (durable outbox) -- with health, model updates over MQTT, commands, the archive and the
systemd watchdog.

Threads: the main loop reads the source and runs the pipeline (trigger, classification,
publishing to the outbox); paho-mqtt's network thread sends and receives. Commands and pushed
bundles arriving on the network thread are queued and handled by the main loop, so the model
is never swapped in the middle of an event.
"""
from __future__ import annotations

import json
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

from obspy import Stream, Trace, UTCDateTime, read_inventory

from edge.comms.messages import Health, ModelState, dumps, iso_utc
from edge.comms.mqtt_link import MqttLink
from edge.comms.outbox import Outbox
from edge.comms.topics import Topics
from edge.model.format import INSTALLED_BUNDLE_NAME, BundleError
from edge.model.inference import EventClassifier
from edge.model.install import current_model_dir, install_bundle, rollback
from edge.model.keys import default_trusted_keys, load_trusted_keys
from edge.model.manifest import StationCompat
from edge.station.archive import SdsArchive
from edge.station.config import load_config
from edge.station.input import Chunk, LinkCounters, LinkNote, replay_chunks, serial_chunks
from edge.station.pipeline import EventPipeline, EventSettings
from edge.station.sd_notify import Notifier
from edge.trigger.stream import StreamingTrigger
from firmware_bridge.faults import FaultSpec
from firmware_bridge.simulator import SimulatorConfig, VirtualDigitizer
from firmware_bridge.sources import NoiseSource, source_from_files

__all__ = ["Daemon", "DaemonError", "ProcessStats"]

log = logging.getLogger(__name__)


class DaemonError(RuntimeError):
    """The daemon cannot start (bad model, unreadable files); the message says why."""


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
    def rss_mb() -> float:
        """Resident memory now (MB), from /proc; the peak from getrusage elsewhere."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024.0, 1)
        except OSError:
            pass
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


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

    def __init__(self, config, source: Iterator[Chunk | LinkNote] | None = None,
                 on_end: Callable[[dict], None] | None = None, install_signals: bool = True,
                 check_only: bool = False) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.counters = LinkCounters()
        self.notifier = Notifier()
        self.process = ProcessStats()
        self.commands: queue.Queue[tuple[str, Any]] = queue.Queue()
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
        return StationCompat(channels=tuple(c[-1] for c in self.config.station.channels),
                             sampling_rate=float(self.config.station.sampling_rate))

    def _open_bundle(self, path: Path | str | None) -> EventClassifier:
        """Verify and load a bundle (None: the shipped default) the way this station runs it."""
        m = self.config.model
        return EventClassifier.load(path, trusted_keys=m.trusted_keys or None, station=self._compat(),
                                    runtime=m.runtime, threads=m.threads, mc_passes=self.config.event.mc_passes)

    def _load_classifier(self) -> EventClassifier:
        m = self.config.model
        path = m.bundle or None
        installed = current_model_dir(self.models_dir) if self.models_dir.exists() else None
        if installed is not None and not m.bundle:
            path = installed / INSTALLED_BUNDLE_NAME  # a pushed model survives restarts
        try:
            return self._open_bundle(path)
        except BundleError as exc:
            raise DaemonError(f"model bundle {path or 'default'}: {exc}") from None

    def _prepare(self) -> None:
        """Everything that reads and validates but writes nothing: model, StationXML, trigger."""
        cfg = self.config
        self.classifier = self._load_classifier()
        if self.classifier.info.synthetic:
            log.warning("model %s %s was trained on SYNTHETIC data: re-train or fine-tune it on this "
                        "site's labeled events", self.classifier.info.name, self.classifier.info.version)
        inventory = None
        if cfg.magnitude.stationxml:
            try:
                inventory = read_inventory(cfg.magnitude.stationxml)
            except Exception as exc:  # noqa: BLE001
                raise DaemonError(f"[magnitude] stationxml {cfg.magnitude.stationxml}: {exc}") from None
        self._settings = EventSettings(pre_s=cfg.event.pre_s, post_s=cfg.event.post_s,
                                       max_window_s=cfg.event.max_window_s, mc_passes=cfg.event.mc_passes,
                                       sensitivity=cfg.magnitude.sensitivity, inventory=inventory,
                                       vp_km_s=cfg.magnitude.vp_km_s, vs_km_s=cfg.magnitude.vs_km_s)
        self._trigger = StreamingTrigger(cfg.trigger)

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
        self.outbox = Outbox(outbox_path)
        self.link = MqttLink(cfg.mqtt, self.station, self.outbox) if cfg.mqtt.enabled else None
        if self.link is not None:
            publisher = _LinkPublisher(self.link, self._on_end)
        else:
            publisher = _OfflinePublisher(self.outbox, Topics.of(cfg.mqtt.prefix, self.station).events,
                                          cfg.mqtt.qos, self._on_end)
        feed = _ArchiveFeed(self.archive) if self.archive else None
        self.pipeline = EventPipeline(self.station, self._trigger, self.classifier,
                                      publisher, self._settings, archive=feed)
        if self.link is not None:
            self.link.on_command = lambda name, payload: self.commands.put(("cmd", (name, payload)))
            self.link.on_model_push = lambda data: self.commands.put(("push", data))

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
            return replay_chunks(s.files, s.speed, self.stop_event)
        if s.kind == "simulate":
            return self._simulated()
        raise DaemonError(f"[source] kind {s.kind!r} unknown")

    def _simulated(self) -> Iterator[Chunk | LinkNote]:
        """The virtual digitizer on a pseudo-terminal, read through the real serial path."""
        s = self.config.source
        src = source_from_files(list(s.files)) if s.files else NoiseSource(self.config.station.sampling_rate)
        faults = FaultSpec.parse(s.faults) if s.faults else FaultSpec()
        sim = VirtualDigitizer(src, SimulatorConfig(speed=s.speed or 1.0, faults=faults,
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
        if self.link is not None:
            self.link.connect()
            self._publish_model()
        self.notifier.ready(f"station {self.station}: model {self.classifier.info.name} "
                            f"{self.classifier.info.version}")
        interval = float(self.config.health.interval_s)
        next_health = time.monotonic() + min(5.0, interval)
        try:
            for item in self._source():
                if isinstance(item, Chunk):
                    self.pipeline.process(item)
                elif isinstance(item, LinkNote):
                    self._note(item)
                    if item.kind == "end":
                        break
                self._service()
                if time.monotonic() >= next_health:
                    self.publish_health()
                    next_health = time.monotonic() + interval
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
                self.publish_health()
                self.link.stop()
            self.outbox_depth_at_exit = self.outbox.depth()
            self.outbox.close()
        return 0

    def _service(self) -> None:
        """Per-loop chores: watchdog, stale events, queued commands."""
        self.notifier.watchdog()
        self.pipeline.tick()
        while True:
            try:
                kind, payload = self.commands.get_nowait()
            except queue.Empty:
                break
            if kind == "cmd":
                self._command(*payload)
            elif kind == "push":
                self._model_push(payload)

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
            extra={"samples": p.samples, "restarts": self.counters.restarts,
                   "disconnects": self.counters.disconnects, "model_name": self.classifier.info.name,
                   "events": p.events_ended, "open_events": len(p.open)},
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

    def _switch_model(self, model_dir: Path, message: str) -> None:
        """Load the bundle installed in ``model_dir`` (verified again) and make it the one the
        pipeline runs from the next event on."""
        self.classifier = self._open_bundle(model_dir / INSTALLED_BUNDLE_NAME)
        self.pipeline.classifier = self.classifier
        self.last_model_result = {"status": "ok", "message": message, "time": iso_utc(UTCDateTime())}

    def _model_push(self, data: bytes) -> None:
        try:
            new_dir = install_bundle(data, self.models_dir, self._trusted_keys(), self._compat())
            self._switch_model(new_dir, f"installed {new_dir.name}")
            log.info("model update: installed %s", new_dir.name)
        except (BundleError, OSError) as exc:
            self.last_model_result = {"status": "error", "message": f"rejected: {exc}",
                                      "time": iso_utc(UTCDateTime())}
            log.warning("model update rejected: %s", exc)
        self._publish_model()

    def _command(self, name: str, payload: bytes) -> None:
        try:
            req = json.loads(payload.decode("utf-8") or "{}") if payload else {}
        except (UnicodeDecodeError, ValueError):
            req = {}
        tx = req.get("transaction") if isinstance(req, dict) else None
        status, data, error = "ok", None, None
        try:
            if name == "health":
                data = self.health_payload()
                self.publish_health()
            elif name == "rollback":
                prev = rollback(self.models_dir)
                self._switch_model(prev, f"rolled back to {prev.name}")
                self._publish_model()
                data = {"model": prev.name}
            elif name == "reload":
                new = load_config(self.config.source_path) if getattr(self.config, "source_path", None) else None
                if new is not None:
                    self.config.health.interval_s = new.health.interval_s
                    data = {"reloaded": True, "note": "health interval applied; restart for other changes"}
                else:
                    data = {"reloaded": False, "note": "no configuration file"}
            else:
                status, error = "error", f"unknown command {name!r} (known: health, rollback, reload)"
        except Exception as exc:  # noqa: BLE001 -- a command must not kill the station
            status, error = "error", str(exc)
        if self.link is not None:
            self.link.respond(name, tx, status, data=data, error=error)


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


class _ArchiveFeed:
    """Feeds the archive Stream pieces from chunks (the archive buffers and flushes)."""

    def __init__(self, archive) -> None:
        self.archive = archive

    def add(self, seed_id: str, data, starttime, sampling_rate: float) -> None:
        net, sta, loc, cha = seed_id.split(".")
        tr = Trace(data=data.astype("int32", copy=False))
        tr.stats.network, tr.stats.station, tr.stats.location, tr.stats.channel = net, sta, loc, cha
        tr.stats.sampling_rate, tr.stats.starttime = sampling_rate, starttime
        self.archive.write(Stream([tr]))

    def write_snippet(self, msg_id: str, st, meta: dict) -> Path:
        return self.archive.write_snippet(msg_id, st, meta)
