"""How a station is assembled from its configuration: the model bundle it runs, the station
response, the event settings and the :class:`~edge.station.pipeline.EventPipeline`.

One place for it, used by the live daemon (:mod:`edge.station.daemon`) and by the offline
replay (:mod:`edge.station.replay`), so that a replay runs exactly the station that
``microseis run`` would run with the same configuration file.
"""
from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Any

from obspy import Inventory, read_inventory

from edge.model.format import INSTALLED_BUNDLE_NAME, BundleError
from edge.model.inference import EventClassifier
from edge.model.install import current_model_dir
from edge.model.manifest import StationCompat
from edge.station.pipeline import EventPipeline, EventSettings, Publisher
from edge.trigger.bands import BandError, station_trigger
from edge.trigger.settings import TriggerConfig
from edge.trigger.stream import StreamingTrigger

log = logging.getLogger(__name__)

__all__ = [
    "ArchiveFeed",
    "SetupError",
    "build_pipeline",
    "event_settings",
    "load_classifier",
    "make_trigger",
    "open_bundle",
    "read_station_inventory",
    "station_compat",
    "trigger_setup",
]


class SetupError(RuntimeError):
    """The station cannot be assembled (bad model, unreadable files); the message says why
    in one line. The daemon knows it as ``DaemonError``."""


def station_compat(cfg, channels: tuple[str, ...] | None = None,
                   sampling_rate: float | None = None) -> StationCompat:
    """What the station can feed a model: the components of ``[station] channels`` and its
    ``sampling_rate`` (Hz), or the ``channels``/``sampling_rate`` given (a replay's data)."""
    chans = channels if channels is not None else tuple(cfg.station.channels)
    rate = sampling_rate if sampling_rate is not None else float(cfg.station.sampling_rate)
    return StationCompat(channels=tuple(c[-1] for c in chans), sampling_rate=float(rate))


def open_bundle(cfg, path: Path | str | None, compat: StationCompat | None = None) -> EventClassifier:
    """Verify and load a bundle (None: the shipped default) the way this station runs it
    (``[model]`` keys, ``[event] mc_passes``). Raises :class:`BundleError`."""
    m = cfg.model
    return EventClassifier.load(path, trusted_keys=m.trusted_keys or None,
                                station=compat if compat is not None else station_compat(cfg),
                                runtime=m.runtime, threads=m.threads, mc_passes=cfg.event.mc_passes)


def load_classifier(cfg, models_dir: Path, bundle: Path | str | None = None,
                    compat: StationCompat | None = None) -> EventClassifier:
    """The bundle the station runs: ``bundle`` when given, else ``[model] bundle``, else the
    last one pushed and installed in ``models_dir``, else the shipped default."""
    path = bundle or cfg.model.bundle or None
    if path is None:
        installed = current_model_dir(models_dir) if Path(models_dir).exists() else None
        if installed is not None:
            path = installed / INSTALLED_BUNDLE_NAME  # a pushed model survives restarts
    try:
        return open_bundle(cfg, path, compat)
    except BundleError as exc:
        raise SetupError(f"model bundle {path or 'default'}: {exc}") from None


def read_station_inventory(cfg, path: Path | str | None = None) -> Inventory | None:
    """The StationXML response: ``path`` when given, else ``[magnitude] stationxml`` (None
    when neither is set)."""
    what = str(path) if path else f"[magnitude] stationxml {cfg.magnitude.stationxml}"
    path = path or cfg.magnitude.stationxml
    if not path:
        return None
    try:
        return read_inventory(str(path))
    except Exception as exc:  # noqa: BLE001 -- name the file, not ObsPy's internals
        if not Path(path).exists():
            raise SetupError(f"{what}: no such file") from None
        lines = str(exc).strip().splitlines()
        raise SetupError(f"{what}: {lines[0] if lines else type(exc).__name__}") from None


def event_settings(cfg, inventory: Inventory | None) -> EventSettings:
    """``[event]`` and ``[magnitude]`` as the pipeline's :class:`EventSettings`."""
    return EventSettings(pre_s=cfg.event.pre_s, post_s=cfg.event.post_s,
                         max_window_s=cfg.event.max_window_s, mc_passes=cfg.event.mc_passes,
                         sensitivity=cfg.magnitude.sensitivity, inventory=inventory,
                         vp_km_s=cfg.magnitude.vp_km_s, vs_km_s=cfg.magnitude.vs_km_s,
                         merge_s=cfg.event.merge_s, max_event_s=cfg.event.max_event_s)


def trigger_setup(cfg, classifier: EventClassifier, sampling_rate: float | None = None,
                  ) -> tuple[TriggerConfig, list[str]]:
    """The ``[trigger]`` settings on the configured bands, else the bundle's (clipped to the
    digitizer at ``sampling_rate`` Hz, default ``[station] sampling_rate``, each with its
    matched STA window: :func:`edge.trigger.bands.station_trigger`), and the standing
    warnings of this setup (a digitizer slower than the model, bands dropped). Raises
    :class:`SetupError` naming the key of a band the digitizer cannot serve."""
    rate = float(sampling_rate if sampling_rate is not None else cfg.station.sampling_rate)
    m = classifier.bundle.manifest
    try:
        trig, band_warnings = station_trigger(cfg.trigger, rate, m.classes, m.class_bands)
    except BandError as exc:
        raise SetupError(str(exc)) from None
    rate_warning = station_compat(cfg, sampling_rate=rate).rate_warning(m)
    warnings = [w for w in (rate_warning, *band_warnings) if w]
    log.info("trigger bands: %s", ", ".join(f"{lo:g}-{hi:g} Hz (STA {sta:g} s)"
                                            for (lo, hi), sta in zip(trig.bands_hz(), trig.bands_sta_s())))
    return trig, warnings


def make_trigger(cfg, classifier: EventClassifier, sampling_rate: float | None = None) -> StreamingTrigger:
    """The streaming trigger of :func:`trigger_setup` (raises on settings it cannot run)."""
    return StreamingTrigger(trigger_setup(cfg, classifier, sampling_rate)[0])


def build_pipeline(cfg, station: str, classifier: EventClassifier, publisher: Publisher,
                   inventory: Inventory | None = None, archive=None,
                   trigger: StreamingTrigger | None = None, sampling_rate: float | None = None,
                   ) -> EventPipeline:
    """The event pipeline of station ``station`` (``NET.STA``): ``trigger`` (default: a new
    :func:`make_trigger`), ``classifier``, the event settings, and ``archive`` (an
    :class:`edge.station.archive.SdsArchive`, or None: nothing written)."""
    if trigger is None:
        trigger = make_trigger(cfg, classifier, sampling_rate)
    return EventPipeline(station, trigger, classifier,
                         publisher, event_settings(cfg, inventory),
                         archive=ArchiveFeed(archive) if archive is not None else None)


class ArchiveFeed:
    """Feeds the archive Stream pieces from chunks (the archive buffers and flushes). A write
    that fails (a full disk) costs that piece of the archive, never the station: it is logged
    (once per minute), and ENOSPC prunes the oldest day-files."""

    LOG_EVERY_S = 60.0

    def __init__(self, archive) -> None:
        self.archive = archive
        self.failures = 0
        self._last_log = -1e9

    def add(self, seed_id: str, data, starttime, sampling_rate: float) -> None:
        try:
            self.archive.append(seed_id, data.astype("int32", copy=False), starttime, sampling_rate)
        except OSError as exc:
            self.failures += 1
            if time.monotonic() - self._last_log >= self.LOG_EVERY_S:
                self._last_log = time.monotonic()
                log.warning("archive: write failed (%s): data dropped from the archive (%d failures "
                            "since start)", exc.strerror or exc, self.failures)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                try:
                    self.archive.make_room()
                except OSError as exc2:
                    log.warning("archive: cannot make room: %s", exc2)

    def write_snippet(self, msg_id: str, st, meta: dict[str, Any]) -> Path:
        return self.archive.write_snippet(msg_id, st, meta)
