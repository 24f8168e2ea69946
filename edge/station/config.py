"""The station configuration: one TOML file -> a :class:`StationConfig` tree, validated at start.

Every problem is reported with the file, the key path and what is wrong, e.g.::

    config.toml: [trigger] sta_s: must be > 0, got -1
    config.toml: unknown key [mqtt] hots (did you mean host?)
    config.toml: line 3, column 7: invalid TOML: Expected '=' after a key in a key/value pair

All problems found are reported at once (one line each) in a :class:`ConfigError`.

Sections: ``[station] [source] [trigger] [event] [model] [magnitude] [mqtt] [archive]
[health] [state] [auth]``. ``[trigger]`` is :class:`edge.trigger.stream.TriggerConfig` and
``[mqtt]`` is :class:`edge.comms.mqtt_link.MqttConfig` plus ``enabled`` and ``password_file``;
both are imported only when needed. Relative paths in the file resolve against the folder of
the file. TOML has no null: a key whose default is "unset" (``None``) is left out.

``python -m edge.station.config example`` prints the commented example (every key with its
default), ``python -m edge.station.config reference`` the Markdown key reference and
``python -m edge.station.config check FILE`` validates a file.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import sys
import textwrap
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

__all__ = [
    "ArchiveConfig",
    "AuthConfig",
    "ConfigError",
    "EventConfig",
    "HealthConfig",
    "MagnitudeConfig",
    "ModelConfig",
    "mqtt_settings_cls",
    "SECTIONS",
    "SourceConfig",
    "StateConfig",
    "StationConfig",
    "StationSection",
    "example_config",
    "load_config",
    "reference_markdown",
]

_PKG = Path(__file__).resolve().parent.parent  # the edge package (models/, keys/)
#: the shipped default model bundle and trusted public keys (same as :mod:`edge.model.bundle`)
DEFAULT_BUNDLE = _PKG / "models" / "default.msb"
KEYS_DIR = _PKG / "keys"


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` holds one line per problem (str() joins them)."""

    def __init__(self, errors: str | list[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


# --------------------------------------------------------------------------- field helpers

Check = Callable[[Any], "str | None"]


def _f(default: Any = MISSING, doc: str = "", *, check: Check | None = None, path: bool = False,
       factory: Callable[[], Any] | None = None, example: Any = None) -> Any:
    """A dataclass field with its documentation, value check and path flag as metadata."""
    meta = {"doc": doc, "check": check, "path": path, "example": example}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _show(v: Any) -> str:
    """A value as it is written in TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_show(x)}" for k, x in v.items()) + " }"
    return repr(v)


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _num(x: float) -> str:
    """A bound in a message: 0 not 0.0."""
    return f"{x:g}"


def gt(lo: float) -> Check:
    """Check: value > lo."""
    return lambda v: None if v > lo else f"must be > {_num(lo)}, got {_show(v)}"


def ge(lo: float) -> Check:
    """Check: value >= lo."""
    return lambda v: None if v >= lo else f"must be >= {_num(lo)}, got {_show(v)}"


def within(lo: float, hi: float, *, lo_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        if ok:
            return None
        return f"must be within {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}], got {_show(v)}"
    return check


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"boolean {_show(v)}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {_show(v)}"
    if isinstance(v, str):
        return f"string {_show(v)}"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v}"


# --------------------------------------------------------------------------- sections

_STATION_ID = re.compile(r"^[A-Z0-9]{1,2}\.[A-Z0-9]{1,5}$")
_LOCATION = re.compile(r"^[A-Z0-9]{0,2}$")
_CHANNEL = re.compile(r"^[A-Z0-9]{2}[ZNE12]$")


def _check_station_id(v: str) -> str | None:
    if _STATION_ID.match(v):
        return None
    return ("must be NET.STA (a 1-2 character network code, a dot, a 1-5 character station "
            f"code; capital letters and digits), e.g. \"XX.S1\", got {_show(v)}")


def _check_location(v: str) -> str | None:
    return None if _LOCATION.match(v) else f"must be empty or 1-2 capital letters/digits, got {_show(v)}"


def _check_channels(v: list[str]) -> str | None:
    if len(v) != 3:
        return f"must list 3 channel codes (vertical and two horizontals), got {len(v)}"
    bad = [c for c in v if not _CHANNEL.match(c)]
    if bad:
        return ("each channel code must be 3 capital letters/digits ending in Z, N, E, 1 or 2 "
                f"(e.g. \"HHZ\"), got {_show(bad[0])}")
    orient = {c[-1] for c in v}
    if orient not in ({"Z", "N", "E"}, {"Z", "1", "2"}):
        return f"must be one Z, N and E channel or one Z, 1 and 2 channel, got {_show(v)}"
    return None


def _check_faults(v: str) -> str | None:
    from firmware_bridge.faults import FaultSpec

    try:
        FaultSpec.parse(v)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass
class StationSection:
    """``[station]``: who this station is and what the digitizer records."""

    id: str = _f("XX.S1", "station id NET.STA (SEED network and station codes); the MQTT topics "
                 "and archive use it", check=_check_station_id)
    location: str = _f("", "SEED location code (\"\" or 2 characters)", check=_check_location)
    channels: list[str] = _f(doc="the 3 channel codes in digitizer order: vertical + 2 horizontals, "
                             "last letter Z/N/E or Z/1/2", check=_check_channels,
                             factory=lambda: ["HHZ", "HHN", "HHE"])
    sampling_rate: float = _f(250.0, "sampling rate of the digitizer (Hz)", check=gt(0.0))

    @property
    def network(self) -> str:
        """SEED network code (the part of ``id`` before the dot)."""
        return self.id.partition(".")[0]

    @property
    def code(self) -> str:
        """SEED station code (the part of ``id`` after the dot)."""
        return self.id.partition(".")[2]

    def _cross(self) -> list[tuple[str, str]]:
        if len(set(self.channels)) != len(self.channels):
            return [("channels", f"must be distinct, got {_show(self.channels)}")]
        return []


SourceKind = Literal["serial", "simulate", "replay"]


@dataclass
class SourceConfig:
    """``[source]``: where the samples come from."""

    kind: SourceKind = _f("serial", "\"serial\" (the digitizer), \"simulate\" (built-in virtual "
                          "digitizer) or \"replay\" (waveform files through the virtual digitizer)")
    port: str = _f("/dev/digitizer", "serial device of the digitizer (kind = \"serial\"); the udev "
                   "rule makes this symlink", path=True)
    baud: int = _f(921600, "serial baud rate (ignored by USB-CDC devices)", check=gt(0))
    files: list[str] = _f(doc="waveform files (any ObsPy format) for replay/simulate; [] = "
                          "synthetic signals", factory=list, path=True)
    speed: float = _f(1.0, "replay speed: 1.0 = real time, 2.0 = twice as fast, 0 = as fast "
                      "as possible", check=ge(0.0))
    faults: str = _f("", "fault injection for the virtual digitizer, e.g. \"drop=0.01,unplug=40:5\" "
                     "(see firmware_bridge/faults.py); \"\" = none", check=_check_faults)

    def _cross(self) -> list[tuple[str, str]]:
        out = []
        if self.kind == "serial" and not self.port:
            out.append(("port", "must be set when kind = \"serial\""))
        if self.kind == "serial" and self.faults:
            out.append(("faults", "only applies to kind = \"simulate\" or \"replay\""))
        if self.kind == "replay" and not self.files:
            out.append(("files", "must list at least one waveform file when kind = \"replay\""))
        return out


@dataclass
class EventConfig:
    """``[event]``: the waveform window cut around a trigger and classified."""

    pre_s: float = _f(2.0, "seconds of data before trigger-on in the event window (s)", check=ge(0.0))
    post_s: float = _f(4.0, "seconds of data after trigger-off in the event window (s)", check=ge(0.0))
    max_window_s: float = _f(60.0, "cap on an event window; a longer trigger is classified on its "
                             "first max_window_s seconds (s)", check=gt(0.0))
    mc_passes: int = _f(20, "Monte-Carlo dropout passes per event (uncertainty); 1 = a single "
                        "deterministic pass", check=ge(1))
    merge_s: float = _f(15.0, "a trigger that turns on within merge_s after the previous one of "
                        "the open event turned off belongs to the same event (the S phase of a "
                        "local quake, the impacts of a rockfall, coda re-triggers): one new, one "
                        "end; 0 = every trigger is its own event (s)", check=ge(0.0))
    max_event_s: float = _f(120.0, "no trigger joins an event that began more than max_event_s "
                            "before it: a longer sequence becomes several events (s)", check=gt(0.0))

    def _cross(self) -> list[tuple[str, str]]:
        if self.max_window_s <= self.pre_s + self.post_s:
            return [("max_window_s", f"must be > pre_s + post_s = {_num(self.pre_s + self.post_s)}, "
                     f"got {_show(self.max_window_s)}")]
        return []


@dataclass
class ModelConfig:
    """``[model]``: the classifier bundle and how it runs."""

    bundle: str = _f("", "signed model bundle (.msb) to run; \"\" = the last bundle pushed and "
                     "installed in models_dir, else the shipped edge/models/default.msb", path=True)
    trusted_keys: list[str] = _f(doc="ed25519 public keys (.pub files or folders of them) "
                                 "trusted for bundles; [] = the shipped keys in edge/keys/",
                                 factory=list, path=True)
    runtime: Literal["onnx", "tflite"] = _f("onnx", "inference runtime: \"onnx\" (ONNX Runtime) or "
                                            "\"tflite\" (LiteRT, needs the tflite extra)")
    threads: int = _f(1, "inference threads", check=within(1, 64))
    models_dir: str = _f("", "where pushed bundles are installed (with rollback); \"\" = "
                         "{state.dir}/models", path=True)


@dataclass
class MagnitudeConfig:
    """``[magnitude]``: the station response for the physical local magnitude ML.

    With neither ``stationxml`` nor ``sensitivity`` the ``end`` message carries
    ``magnitude.ml = null`` with the reason "no station response configured".
    """

    stationxml: str = _f("", "StationXML file with the instrument response; \"\" = none", path=True)
    sensitivity: float | None = _f(None, "flat overall sensitivity (counts per m/s) used when "
                                   "there is no stationxml; unset = none", check=gt(0.0),
                                   example=1.5e9)
    vp_km_s: float = _f(6.0, "P velocity for the S-P distance (km/s)", check=gt(0.0))
    vs_km_s: float = _f(3.5, "S velocity for the S-P distance (km/s)", check=gt(0.0))

    def _cross(self) -> list[tuple[str, str]]:
        if self.vp_km_s <= self.vs_km_s:
            return [("vp_km_s", f"must be > vs_km_s = {_num(self.vs_km_s)}, got {_num(self.vp_km_s)}")]
        return []


@dataclass
class ArchiveConfig:
    """``[archive]``: raw counts as MiniSEED in an SDS tree, plus event snippets."""

    enabled: bool = _f(True, "archive the continuous raw counts")
    path: str = _f("", "root of the SDS archive; \"\" = {state.dir}/archive", path=True)
    retention_days: int = _f(30, "delete day-files older than this (days); 0 = keep forever "
                             "(the disk limit still applies)", check=ge(0))
    max_disk_fraction: float = _f(0.8, "delete the oldest day-files while the filesystem is "
                                  "fuller than this fraction", check=within(0.0, 1.0, lo_open=True))
    snippets: bool = _f(True, "store each event's waveform window and message under "
                        "{archive.path}/events/ for later labeling")


@dataclass
class HealthConfig:
    """``[health]``: the retained health message."""

    interval_s: float = _f(60.0, "seconds between health messages (s)", check=gt(0.0))


@dataclass
class StateConfig:
    """``[state]``: where the station keeps what must survive a restart."""

    dir: str = _f("/var/lib/microseis", "state folder (the systemd unit's StateDirectory)",
                  path=True, check=lambda v: None if v else "must not be empty")
    outbox: str = _f("", "durable outbox of undelivered messages (SQLite); \"\" = "
                     "{state.dir}/outbox.sqlite", path=True)


@dataclass
class AuthConfig:
    """``[auth]``: who may command this station and push it models (edge.comms.auth)."""

    keys_dir: str = _f("/etc/microseis/operator-keys", "folder of the operators' ed25519 public "
                       "keys (*.pub, from microseis keygen); commands and pushes must be signed by "
                       "one of them", path=True)
    allow_unsigned: bool = _f(False, "accept unsigned commands and raw bundle pushes (a closed "
                              "test network only)")
    window_s: float = _f(300.0, "accepted clock difference between the operator and the station "
                         "(s); older or later envelopes are refused", check=gt(0.0))
    rate_per_s: float = _f(5.0, "commands and pushes accepted per second; more are refused "
                           "with an answer", check=gt(0.0))
    burst: int = _f(10, "requests accepted at once before the rate applies", check=within(1, 1000))


# The sections that live in other modules: docs and examples for their fields, used by
# example_config() and reference_markdown(); a test checks that every field has a doc.
TRIGGER_DOCS: dict[str, str] = {
    "method": "characteristic function: \"recstalta\" (recursive STA/LTA) or another method "
              "edge.trigger.stream supports",
    "sta_s": "short-term average window (s)",
    "lta_s": "long-term average window (s)",
    "on": "STA/LTA ratio that turns the trigger on",
    "off": "STA/LTA ratio that turns the trigger off",
    "freqmin": "low corner of a single trigger band (Hz); unset (and bands = []) = the "
               "bundle's bands",
    "freqmax": "high corner of a single trigger band (Hz), below the digitizer's Nyquist "
               "frequency; unset (and bands = []) = the bundle's bands",
    "bands": "trigger bands [[low, high], ...] (Hz), each with its own band-pass and STA/LTA; an "
             "event opens when any band triggers; [] = the bundle's class bands clipped to 0.45 x "
             "the digitizer rate (not together with freqmin/freqmax)",
    "corners": "band-pass filter corners (poles)",
    "min_duration_s": "shorter triggers are discarded (s)",
    "max_duration_s": "a trigger still on after this long is closed (s)",
    "dead_time_s": "after a trigger-off, no new trigger for this long (s)",
    "hold_s": "the trigger stays on this long after the ratio falls below off (s)",
    "coincidence_sum": "sum of channel weights that must be triggered at once",
    "weights": "per-channel weight in the coincidence sum, e.g. { HHZ = 1.0 }; {} = 1 each",
    "warmup_s": "no trigger before this many seconds of data (s); unset = lta_s",
}
TRIGGER_EXAMPLES: dict[str, Any] = {"warmup_s": 10.0, "freqmin": 1.0, "freqmax": 20.0}

MQTT_EXTRA_DOCS: dict[str, str] = {
    "enabled": "connect to the broker and publish; false = run offline (the outbox keeps the messages)",
    "password_file": "read the password from this file (e.g. a systemd credential, "
                     "$CREDENTIALS_DIRECTORY/mqtt); \"\" = use password",
}
MQTT_DOCS: dict[str, str] = {
    "host": "broker host name or address",
    "port": "broker port (1883; 8883 for TLS)",
    "prefix": "topic prefix: topics are {prefix}/{station.id}/...",
    "client_id": "MQTT client id, unique per station; unset = derived from the station id",
    "username": "broker user name; unset = anonymous",
    "password": "broker password; prefer password_file so the secret stays out of this file",
    "tls_ca": "CA certificate (PEM) to verify the broker; setting it turns TLS on",
    "tls_cert": "client certificate (PEM) for mutual TLS",
    "tls_key": "client private key (PEM) for mutual TLS",
    "tls_insecure": "skip the broker host-name check (testing only)",
    "keepalive_s": "MQTT keepalive (s)",
    "reconnect_min_s": "first reconnect delay, doubled after each failure (s)",
    "reconnect_max_s": "longest reconnect delay (s)",
    "qos": "QoS of event messages (0, 1 or 2)",
}
MQTT_EXAMPLES: dict[str, Any] = {
    "client_id": "microseis-XX.S1", "username": "station", "password": "secret",
    "tls_ca": "/etc/microseis/ca.pem", "tls_cert": "/etc/microseis/station.crt",
    "tls_key": "/etc/microseis/station.key",
}
MQTT_PATH_KEYS = ("tls_ca", "tls_cert", "tls_key")


def _trigger_cls() -> type:
    from edge.trigger.stream import TriggerConfig

    return TriggerConfig


def _mqtt_cls() -> type:
    from edge.comms.mqtt_settings import MqttConfig

    return MqttConfig


_MQTT_SETTINGS: list[type] = []


def mqtt_settings_cls() -> type:
    """``MqttSettings``: :class:`edge.comms.mqtt_link.MqttConfig` plus ``enabled`` and
    ``password_file`` (a subclass, so it goes wherever a ``MqttConfig`` goes). Made on first
    use, so that importing this module does not import the MQTT client."""
    if not _MQTT_SETTINGS:
        base = _mqtt_cls()
        params = getattr(base, "__dataclass_params__", None)
        cls = dataclasses.make_dataclass(
            "MqttSettings",
            [("enabled", bool, _f(True, MQTT_EXTRA_DOCS["enabled"])),
             ("password_file", str, _f("", MQTT_EXTRA_DOCS["password_file"], path=True))],
            bases=(base,), frozen=bool(params and params.frozen), namespace={"__module__": __name__})
        cls.__doc__ = ("``[mqtt]``: the broker connection (edge.comms.mqtt_link.MqttConfig) plus "
                       "``enabled`` and ``password_file``; when ``password_file`` is set, "
                       "``password`` holds the file's content.")
        _MQTT_SETTINGS.append(cls)
    return _MQTT_SETTINGS[0]


@dataclass
class StationConfig:
    """The whole station configuration, one attribute per TOML section."""

    station: StationSection = field(default_factory=StationSection)
    source: SourceConfig = field(default_factory=SourceConfig)
    trigger: Any = field(default_factory=lambda: _trigger_cls()())  # edge.trigger.stream.TriggerConfig
    event: EventConfig = field(default_factory=EventConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    magnitude: MagnitudeConfig = field(default_factory=MagnitudeConfig)
    mqtt: Any = field(default_factory=lambda: mqtt_settings_cls()())  # MqttConfig + enabled, password_file
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    state: StateConfig = field(default_factory=StateConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: the file it was loaded from (None when built from a dict); not part of to_dict()
    source_path: Path | None = field(default=None, compare=False, repr=False)

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
                  base_dir: str | Path | None = None) -> "StationConfig":
        """Build and validate from a parsed TOML document. Relative paths resolve against
        ``base_dir`` (left relative when None). Raises :class:`ConfigError`."""
        return _Loader(source, Path(base_dir) if base_dir is not None else None).load(d)

    def to_dict(self) -> dict[str, Any]:
        """The TOML document (nested dicts) of this configuration; unset keys are left out,
        so ``from_dict(to_dict())`` gives an equal configuration."""
        out: dict[str, Any] = {}
        for name, section_cls, _ in _sections():
            obj = getattr(self, name)
            sec = _plain(obj)
            if name == "mqtt":
                sec = {"enabled": sec.pop("enabled"), "password_file": sec.pop("password_file"), **sec}
                if obj.password_file:
                    sec.pop("password", None)  # it came from the file
            out[name] = {k: v for k, v in sec.items() if v is not None}
        return out


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: _copy(getattr(obj, f.name)) for f in fields(obj)}


def _copy(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_copy(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


def _sections() -> list[tuple[str, type, str]]:
    """(name, dataclass, one-line description) of every section, in file order."""
    return [
        ("station", StationSection, "who this station is and what the digitizer records"),
        ("source", SourceConfig, "where the samples come from"),
        ("trigger", _trigger_cls(), "the streaming STA/LTA trigger (edge.trigger.stream.TriggerConfig)"),
        ("event", EventConfig, "the waveform window cut around a trigger and classified"),
        ("model", ModelConfig, "the classifier bundle and how it runs"),
        ("magnitude", MagnitudeConfig, "the station response for the physical local magnitude ML"),
        ("mqtt", mqtt_settings_cls(), "the broker connection (edge.comms.mqtt_link.MqttConfig) and two station keys"),
        ("archive", ArchiveConfig, "raw counts as MiniSEED (SDS tree) and event snippets"),
        ("health", HealthConfig, "the retained health message"),
        ("state", StateConfig, "where the station keeps what must survive a restart"),
        ("auth", AuthConfig, "who may command this station and push it models"),
    ]


SECTIONS = ("station", "source", "trigger", "event", "model", "magnitude", "mqtt", "archive",
            "health", "state", "auth")

# --------------------------------------------------------------------------- type checks


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation we cannot resolve: no type checks for that class
        return {}


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, (args[0] if len(args) == 1 else typing.Union[tuple(args)])
    return False, tp


def _expected(tp: Any) -> str:
    opt, tp = _is_optional(tp)
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "a boolean (true or false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        inner = _expected(item).split(" ", 1)[-1].split(" (")[0]
        if typing.get_origin(item) is list:  # "arrays of numbers"
            return "an array of " + inner.replace("array", "arrays", 1)
        return "an array of " + inner + "s"
    if origin is dict:
        args = typing.get_args(tp)
        return "a table of " + _expected(args[1] if args else Any).split(" ", 1)[-1] + "s"
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in typing.get_args(tp))
    return "a value"


def _coerce(value: Any, tp: Any, key: str) -> tuple[Any, list[tuple[str, str]]]:
    """(value converted to ``tp``, [(key path, problem)]) for one TOML value."""
    opt, tp = _is_optional(tp)
    if value is None:
        return (None, []) if opt else (None, [(key, f"expected {_expected(tp)}, got nothing (null)")])
    origin = typing.get_origin(tp)
    bad = [(key, f"expected {_expected(tp)}, got {_describe(value)}")]
    if tp is Any or (not isinstance(tp, type) and origin is None):
        return value, []
    if tp is str:
        return (value, []) if isinstance(value, str) else (value, bad)
    if tp is bool:
        return (value, []) if isinstance(value, bool) else (value, bad)
    if tp is int:
        return (value, []) if isinstance(value, int) and not isinstance(value, bool) else (value, bad)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                return value, [(key, f"must be a finite number, got {_show(value)}")]
            return float(value), []
        return value, bad
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value, []
        return value, [(key, f"must be {_expected(tp)}, got {_show(value)}")]
    if origin is list:
        if not isinstance(value, list):
            return value, bad
        (item,) = typing.get_args(tp) or (Any,)
        out, errs = [], []
        for i, x in enumerate(value):
            v, e = _coerce(x, item, f"{key}[{i}]")
            out.append(v)
            errs += e
        return out, errs
    if origin is dict:
        if not isinstance(value, dict):
            return value, bad
        args = typing.get_args(tp)
        vt = args[1] if args else Any
        out_d, errs = {}, []
        for k, x in value.items():
            v, e = _coerce(x, vt, f"{key}.{_key(k)}")
            out_d[k] = v
            errs += e
        return out_d, errs
    if isinstance(tp, type) and not isinstance(value, tp):
        return value, bad
    return value, []


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _field_path_flag(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("path"))


class _Loader:
    """Validates one parsed document; collects every problem before raising."""

    def __init__(self, source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        self.errors: list[str] = []

    def err(self, section: str, key: str, problem: str) -> None:
        self.errors.append(f"{self.source}: [{section}] {key}: {problem}")

    def _path(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self._path(x) for x in v]
        if not isinstance(v, str) or not v or self.base_dir is None:
            return v
        p = Path(v).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    def load(self, doc: Mapping[str, Any]) -> StationConfig:
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{self.source}: expected a TOML table, got {_describe(doc)}")
        sections = _sections()
        names = [s[0] for s in sections]
        for name, value in doc.items():
            if name not in names:
                kind = "section" if isinstance(value, dict) else "top-level key"
                self.errors.append(f"{self.source}: unknown {kind} [{name}]{_suggest(name, names)}"
                                   if kind == "section" else
                                   f"{self.source}: unknown {kind} {name}{_suggest(name, names)}"
                                   " (keys belong in a [section])")
            elif not isinstance(value, dict):
                self.errors.append(f"{self.source}: [{name}] must be a table (section), "
                                   f"got {_describe(value)}")
        built: dict[str, Any] = {}
        for name, cls, _ in sections:
            raw = doc.get(name, {})
            if not isinstance(raw, dict):
                raw = {}
            if name == "trigger":
                built[name] = self._foreign(name, cls, raw, {}, ())
            elif name == "mqtt":
                built[name] = self._mqtt(_mqtt_cls(), raw)
            else:
                built[name] = self._section(name, cls, raw)
        if self.errors:
            raise ConfigError(self.errors)
        return StationConfig(**built)

    def _values(self, section: str, cls: type, raw: Mapping[str, Any], extra: tuple[str, ...] = ()
                ) -> tuple[dict[str, Any], bool]:
        """Type-checked, path-resolved values of the keys present in ``raw``; ok flag."""
        flds = {f.name: f for f in fields(cls)}
        known = list(flds) + list(extra)
        hints = _hints(cls)
        n0 = len(self.errors)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                self.errors.append(f"{self.source}: unknown key [{section}] {key}{_suggest(key, known)}")
                continue
            if key in extra:
                continue
            tp = hints.get(key, Any)
            v, errs = _coerce(value, tp, key)
            for k, problem in errs:
                self.err(section, k, problem)
            if errs:
                continue
            f = flds[key]
            check = f.metadata.get("check")
            if check is not None and v is not None:
                # check the value as written (an integer stays an integer in the message)
                problem = check(value if isinstance(v, float) else v)
                if problem:
                    self.err(section, key, problem)
                    continue
            out[key] = self._path(v) if _field_path_flag(f) else v
        return out, len(self.errors) == n0

    def _section(self, name: str, cls: type, raw: Mapping[str, Any]) -> Any:
        values, ok = self._values(name, cls, raw)
        if not ok:
            return None
        obj = cls(**values)
        for key, problem in getattr(obj, "_cross", lambda: [])():
            self.err(name, key, problem)
        return obj

    def _foreign(self, name: str, cls: type, raw: Mapping[str, Any], overrides: dict[str, Any],
                 path_keys: tuple[str, ...], extra: tuple[str, ...] = ()) -> Any:
        """A section whose dataclass (with its own ``from_dict``) lives in another module."""
        values, ok = self._values(name, cls, raw, extra)
        if not ok:
            return None
        for k in path_keys:
            if k in values:
                values[k] = self._path(values[k])
        values.update(overrides)
        try:
            return cls.from_dict(values)
        except (ValueError, TypeError) as exc:
            self.errors.append(f"{self.source}: [{name}] {_field_message(str(exc), cls)}")
            return None

    def _mqtt(self, base: type, raw: Mapping[str, Any]) -> Any:
        cls = mqtt_settings_cls()
        own, ok = self._values("mqtt", cls, {k: v for k, v in raw.items()
                                             if k in ("enabled", "password_file")})
        overrides: dict[str, Any] = {}
        pw_file = own.get("password_file", "")
        if ok and pw_file:
            if raw.get("password") is not None:
                self.err("mqtt", "password_file", "set either password or password_file, not both")
                ok = False
            else:
                try:
                    overrides["password"] = Path(pw_file).read_text(encoding="utf-8").rstrip("\r\n")
                except (OSError, UnicodeDecodeError) as exc:
                    self.err("mqtt", "password_file", f"cannot read {pw_file}: {_os_reason(exc)}")
                    ok = False
        link = self._foreign("mqtt", base, {k: v for k, v in raw.items()
                                            if k not in ("enabled", "password_file")},
                             overrides, MQTT_PATH_KEYS, extra=("enabled", "password_file"))
        if not ok or link is None:
            return None
        if link.password and not link.username:
            # MQTT sends a password only with a user name: the link would refuse it at start
            self.err("mqtt", "password_file" if pw_file else "password",
                     "needs [mqtt] username (MQTT sends a password only with a user name)")
            return None
        return cls(**{f.name: getattr(link, f.name) for f in fields(base) if f.init}, **own)


def _field_message(msg: str, cls: type) -> str:
    """``"sta_s must be > 0"`` -> ``"sta_s: must be > 0"`` when the message starts with a field."""
    names = sorted((f.name for f in fields(cls)), key=len, reverse=True)
    m = re.match(r"^\s*(?:\[\w+\]\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*(?::|=|\s)\s*(.*)$", msg, re.S)
    if m and m.group(1) in names and m.group(2):
        return f"{m.group(1)}: {m.group(2)}"
    return msg


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> StationConfig:
    """Read and validate one TOML file; relative paths in it resolve against its folder.

    Raises :class:`ConfigError` (a ``ValueError``) whose message starts with ``path``.
    """
    p = Path(path)
    source = str(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {_os_reason(exc)}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
        if m:
            msg = f"line {m.group(1)}, column {m.group(2)}: invalid TOML: {msg[:m.start()]}"
        elif "end of document" in msg:
            msg = f"line {text.count(chr(10)) + 1}: invalid TOML: {msg}"
        else:
            msg = f"invalid TOML: {msg}"
        raise ConfigError(f"{source}: {msg}") from None
    cfg = StationConfig.from_dict(doc, source=source, base_dir=p.resolve().parent)
    cfg.source_path = p.resolve()
    return cfg


# --------------------------------------------------------------------------- documentation


def _rows(name: str, cls: type) -> list[tuple[str, Any, str, Any, str]]:
    """(key, default, doc, example for an unset default, type text) of one section."""
    hints = _hints(cls)
    rows = []
    if name == "mqtt":
        for f in fields(cls)[-2:]:  # enabled, password_file (MqttSettings adds them last)
            rows.append((f.name, f.default, f.metadata["doc"], None, _expected(hints.get(f.name, Any))))
    docs = {"trigger": TRIGGER_DOCS, "mqtt": MQTT_DOCS}.get(name, {})
    examples = {"trigger": TRIGGER_EXAMPLES, "mqtt": MQTT_EXAMPLES}.get(name, {})
    for f in (fields(cls)[:-2] if name == "mqtt" else fields(cls)):
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:  # pragma: no cover - every config field has a default
            default = None
        doc = f.metadata.get("doc") or f.metadata.get("help") or docs.get(f.name, "")
        example = f.metadata.get("example", examples.get(f.name))
        rows.append((f.name, default, doc, example, _expected(hints.get(f.name, Any))))
    return rows


def example_config() -> str:
    """A commented TOML file with every key at its default (unset keys commented out with an
    example value). Loading it gives ``StationConfig()``."""
    out = [
        "# microseis-edge station configuration (TOML). Every key is shown with its default;",
        "# delete what you do not change. Keys commented out are unset by default (TOML has no",
        "# null). Relative paths resolve against the folder of this file.",
        "# Check a file with: python -m edge.station.config check /etc/microseis/config.toml",
    ]
    for name, cls, desc in _sections():
        out += ["", f"# {desc}", f"[{name}]"]
        for key, default, doc, example, _ in _rows(name, cls):
            out += textwrap.wrap(doc, 94, initial_indent="# ", subsequent_indent="#   ")
            if default is None:
                out.append(f"# {key} = {_show(example if example is not None else '')}")
            else:
                out.append(f"{key} = {_show(default)}")
    return "\n".join(out) + "\n"


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
    out = []
    for name, cls, desc in _sections():
        out += [f"### `[{name}]` — {desc}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, default, doc, _, typ in _rows(name, cls):
            shown = "unset" if default is None else f"`{_show(default)}`"
            typ = typ.replace("|", "\\|")
            out.append(f"| `{key}` | {typ} | {shown} | {doc.replace('|', chr(92) + '|')} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.station.config example|reference|check FILE``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["example"]:
        sys.stdout.write(example_config())
        return 0
    if args[:1] == ["reference"]:
        sys.stdout.write(reference_markdown())
        return 0
    if len(args) == 2 and args[0] == "check":
        try:
            load_config(args[1])
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{args[1]}: ok")
        return 0
    print("usage: python -m edge.station.config example | reference | check FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
