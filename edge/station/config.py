"""The station configuration: one TOML file -> a :class:`StationConfig` tree of msgspec
Structs (declared on :mod:`edge.schema`), validated at start.

Every problem is reported with the file, the key path and what is wrong, e.g.::

    config.toml: [trigger] sta_s: must be > 0, got -1
    config.toml: unknown key [mqtt] hots (did you mean host?)
    config.toml: line 3, column 7: invalid TOML: Expected '=' after a key in a key/value pair

All problems found are reported at once (one line each) in a :class:`ConfigError`.

Sections: ``[station] [source] [trigger] [event] [model] [magnitude] [mqtt] [archive]
[health] [state] [auth]``. ``[trigger]`` is :class:`edge.trigger.settings.TriggerConfig` and
``[mqtt]`` is :class:`MqttSettings`, a :class:`edge.comms.mqtt_settings.MqttConfig` plus
``enabled`` and ``password_file``. Relative paths in the file resolve against the folder of
the file. TOML has no null: a key whose default is "unset" (``None``) is left out.

``microseis run --print-example-config`` prints the commented example (every key with its
default; :func:`example_config`), ``microseis run --config FILE --check`` validates a file;
the key reference of docs/configuration.md is :func:`reference_markdown`
(``python -m edge.schema.docs --write`` rewrites it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from edge.comms.mqtt_settings import MqttConfig
from edge.schema import ConfigError, Invalid, Problem, collect, num, show
from edge.schema.render import example_toml
from edge.schema.render import reference_markdown as _reference
from edge.schema.toml import os_reason, read_toml
from edge.trigger.settings import TriggerConfig

__all__ = [
    "ArchiveConfig",
    "AuthConfig",
    "ConfigError",
    "EventConfig",
    "HealthConfig",
    "MagnitudeConfig",
    "ModelConfig",
    "MqttSettings",
    "SECTIONS",
    "SourceConfig",
    "StateConfig",
    "StationConfig",
    "StationSection",
    "example_config",
    "example_keys",
    "load_config",
    "reference_markdown",
]

_PKG = Path(__file__).resolve().parent.parent  # the edge package (models/, keys/)
#: the shipped default model bundle and trusted public keys (same as :mod:`edge.model.bundle`)
DEFAULT_BUNDLE = _PKG / "models" / "default.msb"
KEYS_DIR = _PKG / "keys"

PATH = {"path": True}  # Meta extra: a file or folder, relative to the configuration file


class _Section(Struct, forbid_unknown_fields=True, kw_only=True):
    """A ``[section]`` of the file: unknown keys are errors."""


# --------------------------------------------------------------------------- sections

_STATION_ID = re.compile(r"^[A-Z0-9]{1,2}\.[A-Z0-9]{1,5}$")
_LOCATION = re.compile(r"^[A-Z0-9]{0,2}$")
_CHANNEL = re.compile(r"^[A-Z0-9]{2}[ZNE12]$")


class StationSection(_Section):
    """``[station]``: who this station is and what the digitizer records."""

    id: Annotated[str, Meta(description="station id NET.STA (SEED network and station codes); the "
                                        "MQTT topics and archive use it")] = "XX.S1"
    location: Annotated[str, Meta(description="SEED location code (\"\" or 2 characters)")] = ""
    channels: Annotated[list[str], Meta(description="the 3 channel codes in digitizer order: vertical + "
                                                    "2 horizontals, last letter Z/N/E or Z/1/2")] = \
        msgspec.field(default_factory=lambda: ["HHZ", "HHN", "HHE"])
    sampling_rate: Annotated[float, Meta(gt=0, description="sampling rate of the digitizer (Hz)")] = 250.0

    def __post_init__(self) -> None:
        Invalid.check([
            None if _STATION_ID.match(self.id) else (
                "id", "must be NET.STA (a 1-2 character network code, a dot, a 1-5 character station "
                      f"code; capital letters and digits), e.g. \"XX.S1\", got {show(self.id)}"),
            None if _LOCATION.match(self.location) else (
                "location", f"must be empty or 1-2 capital letters/digits, got {show(self.location)}"),
            _channels_problem(self.channels),
        ])

    @property
    def network(self) -> str:
        """SEED network code (the part of ``id`` before the dot)."""
        return self.id.partition(".")[0]

    @property
    def code(self) -> str:
        """SEED station code (the part of ``id`` after the dot)."""
        return self.id.partition(".")[2]


def _channels_problem(v: list[str]) -> tuple[str, str] | None:
    if len(v) != 3:
        return "channels", f"must list 3 channel codes (vertical and two horizontals), got {len(v)}"
    bad = [c for c in v if not _CHANNEL.match(c)]
    if bad:
        return "channels", ("each channel code must be 3 capital letters/digits ending in Z, N, E, 1 "
                            f"or 2 (e.g. \"HHZ\"), got {show(bad[0])}")
    if {c[-1] for c in v} not in ({"Z", "N", "E"}, {"Z", "1", "2"}):
        return "channels", f"must be one Z, N and E channel or one Z, 1 and 2 channel, got {show(v)}"
    if len(set(v)) != len(v):  # pragma: no cover - distinct orientations make distinct codes
        return "channels", f"must be distinct, got {show(v)}"
    return None


class SourceConfig(_Section):
    """``[source]``: where the samples come from."""

    kind: Annotated[Literal["serial", "simulate", "replay"], Meta(
        description="\"serial\" (the digitizer), \"simulate\" (built-in virtual digitizer) or "
                    "\"replay\" (waveform files through the virtual digitizer)")] = "serial"
    port: Annotated[str, Meta(description="serial device of the digitizer (kind = \"serial\"); the "
                                          "udev rule makes this symlink", extra=PATH)] = "/dev/digitizer"
    baud: Annotated[int, Meta(gt=0, description="serial baud rate (ignored by USB-CDC devices)")] = 921600
    files: Annotated[list[str], Meta(description="waveform files (any ObsPy format) for "
                                                 "replay/simulate; [] = synthetic signals", extra=PATH)] = []
    speed: Annotated[float, Meta(ge=0, description="replay speed: 1.0 = real time, 2.0 = twice as "
                                                   "fast, 0 = as fast as possible")] = 1.0
    faults: Annotated[str, Meta(description="fault injection for the virtual digitizer, e.g. "
                                            "\"drop=0.01,unplug=40:5\" (see firmware_bridge/faults.py); "
                                            "\"\" = none")] = ""

    def __post_init__(self) -> None:
        # deferred: the firmware_bridge package imports numpy (its decoder); the configuration
        # alone stays light (the example, the installer's check)
        from firmware_bridge.faults import FaultSpec

        try:
            FaultSpec.parse(self.faults)
            bad_faults = None
        except ValueError as exc:
            bad_faults = ("faults", str(exc))
        Invalid.check([
            bad_faults,
            ("port", "must be set when kind = \"serial\"") if self.kind == "serial" and not self.port else None,
            ("faults", "only applies to kind = \"simulate\" or \"replay\"")
            if self.kind == "serial" and self.faults and not bad_faults else None,
            ("files", "must list at least one waveform file when kind = \"replay\"")
            if self.kind == "replay" and not self.files else None,
        ])


class EventConfig(_Section):
    """``[event]``: the waveform window cut around a trigger and classified."""

    pre_s: Annotated[float, Meta(ge=0, description="seconds of data before trigger-on in the event "
                                                   "window (s)")] = 2.0
    post_s: Annotated[float, Meta(ge=0, description="seconds of data after trigger-off in the event "
                                                    "window (s)")] = 4.0
    max_window_s: Annotated[float, Meta(gt=0, description="cap on an event window; a longer trigger is "
                                                          "classified on its first max_window_s seconds "
                                                          "(s)")] = 60.0
    mc_passes: Annotated[int, Meta(ge=1, description="Monte-Carlo dropout passes per event "
                                                     "(uncertainty); 1 = a single deterministic pass")] = 20
    merge_s: Annotated[float, Meta(ge=0, description="a trigger that turns on within merge_s after the "
                                                     "previous one of the open event turned off belongs to "
                                                     "the same event (the S phase of a local quake, the "
                                                     "impacts of a rockfall, coda re-triggers): one new, one "
                                                     "end; 0 = every trigger is its own event (s)")] = 10.0
    max_event_s: Annotated[float, Meta(gt=0, description="no trigger joins an event that began more than "
                                                         "max_event_s before it: a longer sequence becomes "
                                                         "several events (s)")] = 120.0

    def __post_init__(self) -> None:
        if self.max_window_s <= self.pre_s + self.post_s:
            raise Invalid(("max_window_s", f"must be > pre_s + post_s = {num(self.pre_s + self.post_s)}, "
                                           f"got {show(self.max_window_s)}"))


class ModelConfig(_Section):
    """``[model]``: the classifier bundle and how it runs."""

    bundle: Annotated[str, Meta(description="signed model bundle (.msb) to run; \"\" = the last bundle "
                                            "pushed and installed in models_dir, else the shipped "
                                            "edge/models/default.msb", extra=PATH)] = ""
    trusted_keys: Annotated[list[str], Meta(description="ed25519 public keys (.pub files or folders of "
                                                        "them) trusted for bundles; [] = the shipped keys "
                                                        "in edge/keys/", extra=PATH)] = []
    runtime: Annotated[Literal["onnx", "tflite"], Meta(
        description="inference runtime: \"onnx\" (ONNX Runtime) or \"tflite\" (LiteRT, needs the "
                    "tflite extra)")] = "onnx"
    threads: Annotated[int, Meta(ge=1, le=64, description="inference threads")] = 1
    models_dir: Annotated[str, Meta(description="where pushed bundles are installed (with rollback); "
                                                "\"\" = {state.dir}/models", extra=PATH)] = ""


class MagnitudeConfig(_Section):
    """``[magnitude]``: the station response for the physical local magnitude ML.

    With neither ``stationxml`` nor ``sensitivity`` the ``end`` message carries
    ``magnitude.ml = null`` with the reason "no station response configured".
    """

    stationxml: Annotated[str, Meta(description="StationXML file with the instrument response; \"\" = "
                                                "none", extra=PATH)] = ""
    sensitivity: Annotated[Annotated[float, Meta(gt=0)] | None, Meta(
        description="flat overall sensitivity (counts per m/s) used when there is no stationxml; "
                    "unset = none", examples=[1.5e9])] = None
    vp_km_s: Annotated[float, Meta(gt=0, description="P velocity for the S-P distance (km/s)")] = 6.0
    vs_km_s: Annotated[float, Meta(gt=0, description="S velocity for the S-P distance (km/s)")] = 3.5

    def __post_init__(self) -> None:
        if self.vp_km_s <= self.vs_km_s:
            raise Invalid(("vp_km_s", f"must be > vs_km_s = {num(self.vs_km_s)}, got {num(self.vp_km_s)}"))


class MqttSettings(MqttConfig, forbid_unknown_fields=True, kw_only=True):
    """``[mqtt]``: the broker connection (:class:`edge.comms.mqtt_settings.MqttConfig`) plus
    ``enabled`` and ``password_file``; when ``password_file`` is set, ``password`` holds the
    file's content. A subclass: it goes wherever a ``MqttConfig`` goes."""

    enabled: Annotated[bool, Meta(description="connect to the broker and publish; false = run offline "
                                              "(the outbox keeps the messages)")] = True
    password_file: Annotated[str, Meta(description="read the password from this file (e.g. a systemd "
                                                   "credential, $CREDENTIALS_DIRECTORY/mqtt); \"\" = use "
                                                   "password", extra=PATH)] = ""


class ArchiveConfig(_Section):
    """``[archive]``: raw counts as MiniSEED in an SDS tree, plus event snippets."""

    enabled: Annotated[bool, Meta(description="archive the continuous raw counts")] = True
    path: Annotated[str, Meta(description="root of the SDS archive; \"\" = {state.dir}/archive",
                              extra=PATH)] = ""
    retention_days: Annotated[int, Meta(ge=0, description="delete day-files older than this (days); 0 = "
                                                          "keep forever (the disk limit still applies)")] = 30
    max_disk_fraction: Annotated[float, Meta(gt=0, le=1, description="delete the oldest day-files while the "
                                                                      "filesystem is fuller than this "
                                                                      "fraction")] = 0.8
    snippets: Annotated[bool, Meta(description="store each event's waveform window and message under "
                                               "{archive.path}/events/ for later labeling")] = True


class HealthConfig(_Section):
    """``[health]``: the retained health message."""

    interval_s: Annotated[float, Meta(gt=0, description="seconds between health messages (s)")] = 60.0


class StateConfig(_Section):
    """``[state]``: where the station keeps what must survive a restart."""

    dir: Annotated[str, Meta(description="state folder (the systemd unit's StateDirectory)",
                             extra=PATH)] = "/var/lib/microseis"
    outbox: Annotated[str, Meta(description="durable outbox of undelivered messages (SQLite); \"\" = "
                                            "{state.dir}/outbox.sqlite", extra=PATH)] = ""

    def __post_init__(self) -> None:
        if not self.dir:
            raise Invalid(("dir", "must not be empty"))


class AuthConfig(_Section):
    """``[auth]``: who may command this station and push it models (edge.comms.auth)."""

    keys_dir: Annotated[str, Meta(description="folder of the operators' ed25519 public keys (*.pub, from "
                                              "microseis keygen); commands and pushes must be signed by "
                                              "one of them", extra=PATH)] = "/etc/microseis/operator-keys"
    allow_unsigned: Annotated[bool, Meta(description="accept unsigned commands and raw bundle pushes (a "
                                                     "closed test network only)")] = False
    window_s: Annotated[float, Meta(gt=0, description="accepted clock difference between the operator "
                                                      "and the station (s); older or later envelopes are "
                                                      "refused")] = 300.0
    rate_per_s: Annotated[float, Meta(gt=0, description="commands and pushes accepted per second; more "
                                                        "are refused with an answer")] = 5.0
    burst: Annotated[int, Meta(ge=1, le=1000, description="requests accepted at once before the rate "
                                                          "applies")] = 10


def _section(cls: type, doc: str) -> Any:
    return Annotated[cls, Meta(description=doc)]


class StationConfig(Struct, forbid_unknown_fields=True, kw_only=True, dict=True):
    """The whole station configuration, one attribute per TOML section."""

    station: _section(StationSection, "who this station is and what the digitizer records") = \
        msgspec.field(default_factory=StationSection)
    source: _section(SourceConfig, "where the samples come from") = msgspec.field(default_factory=SourceConfig)
    trigger: _section(TriggerConfig, "the streaming STA/LTA trigger (edge.trigger.settings.TriggerConfig)") = \
        msgspec.field(default_factory=TriggerConfig)
    event: _section(EventConfig, "the waveform window cut around a trigger and classified") = \
        msgspec.field(default_factory=EventConfig)
    model: _section(ModelConfig, "the classifier bundle and how it runs") = msgspec.field(default_factory=ModelConfig)
    magnitude: _section(MagnitudeConfig, "the station response for the physical local magnitude ML") = \
        msgspec.field(default_factory=MagnitudeConfig)
    mqtt: _section(MqttSettings, "the broker connection (edge.comms.mqtt_settings.MqttConfig) and two "
                                 "station keys") = msgspec.field(default_factory=MqttSettings)
    archive: _section(ArchiveConfig, "raw counts as MiniSEED (SDS tree) and event snippets") = \
        msgspec.field(default_factory=ArchiveConfig)
    health: _section(HealthConfig, "the retained health message") = msgspec.field(default_factory=HealthConfig)
    state: _section(StateConfig, "where the station keeps what must survive a restart") = \
        msgspec.field(default_factory=StateConfig)
    auth: _section(AuthConfig, "who may command this station and push it models") = \
        msgspec.field(default_factory=AuthConfig)

    #: the file it was loaded from (None when built from a dict); not part of to_dict() or ==
    source_path: ClassVar[Path | None] = None

    # ----------------------------------------------------------------- derived paths
    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir)

    @property
    def outbox_path(self) -> Path:
        return Path(self.state.outbox) if self.state.outbox else self.state_dir / "outbox.sqlite"

    @property
    def archive_dir(self) -> Path:
        return Path(self.archive.path) if self.archive.path else self.state_dir / "archive"

    @property
    def models_dir(self) -> Path:
        return Path(self.model.models_dir) if self.model.models_dir else self.state_dir / "models"

    @property
    def bundle_path(self) -> Path:
        return Path(self.model.bundle) if self.model.bundle else DEFAULT_BUNDLE

    @property
    def trusted_key_paths(self) -> list[Path]:
        return [Path(p) for p in self.model.trusted_keys] or [KEYS_DIR]

    # ----------------------------------------------------------------- dict round trip
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<config>",
                  base_dir: str | Path | None = None) -> StationConfig:
        """Build and validate from a parsed TOML document. Relative paths resolve against
        ``base_dir`` (left relative when None). Raises :class:`ConfigError`."""
        cfg, problems = collect(d, cls, base_dir=base_dir)
        if cfg is not None:
            raw = d.get("mqtt", {})
            cfg.mqtt, problems = _mqtt_password(cfg.mqtt, raw.get("password") is not None)
        if problems:
            raise ConfigError([f"{source}: {p.render('toml')}" for p in problems], problems)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The TOML document (nested dicts) of this configuration; unset keys are left out
        (and a password that came from its file), so ``from_dict(to_dict())`` is equal."""
        out = {name: {k: v for k, v in sec.items() if v is not None}
               for name, sec in msgspec.to_builtins(self).items()}
        if self.mqtt.password_file:
            out["mqtt"].pop("password", None)
        return out


SECTIONS: tuple[str, ...] = StationConfig.__struct_fields__


def _mqtt_password(mqtt: MqttSettings, password_given: bool) -> tuple[MqttSettings, list[Problem]]:
    """Read ``password_file`` into ``password``; MQTT sends a password only with a user name."""
    key = "password"
    if mqtt.password_file:
        key = "password_file"
        if password_given:
            return mqtt, [Problem(("mqtt", key), "set either password or password_file, not both")]
        try:
            secret = Path(mqtt.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            return mqtt, [Problem(("mqtt", key), f"cannot read {mqtt.password_file}: {os_reason(exc)}")]
        mqtt = msgspec.structs.replace(mqtt, password=secret)
    if mqtt.password and not mqtt.username:  # the link would refuse it at start
        return mqtt, [Problem(("mqtt", key), "needs [mqtt] username (MQTT sends a password only with "
                                             "a user name)")]
    return mqtt, []


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> StationConfig:
    """Read and validate one TOML file; relative paths in it resolve against its folder.

    Raises :class:`ConfigError` (a ``ValueError``) whose message starts with ``path``.
    """
    p = Path(path)
    cfg = StationConfig.from_dict(read_toml(p, str(path)), source=str(path), base_dir=p.resolve().parent)
    cfg.source_path = p.resolve()
    return cfg


# --------------------------------------------------------------------------- documentation

_HEADER = (
    "microseis-edge station configuration (TOML). Every key is shown with its default;",
    "delete what you do not change. Keys commented out are unset by default (TOML has no",
    "null). Relative paths resolve against the folder of this file.",
    "Check a file with: microseis run --config /etc/microseis/config.toml --check",
)


def example_config() -> str:
    """A commented TOML file with every key at its default (unset keys commented out with an
    example value). Loading it gives ``StationConfig()``."""
    return example_toml(StationConfig, _HEADER)


def example_keys(text: str | None = None) -> list[str]:
    """``section.key`` of every key (set or commented out) in :func:`example_config`."""
    text = example_config() if text is None else text
    keys, section = [], ""
    for line in text.splitlines():
        m = re.match(r"^\[(\w+)\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^#?\s?([a-z_][a-z0-9_]*) = ", line)
        if m and section:
            keys.append(f"{section}.{m.group(1)}")
    return keys


def reference_markdown() -> str:
    """The key reference of docs/configuration.md: one Markdown table per section."""
    return _reference(StationConfig)
