"""edge.station.config: the example loads and round-trips, every key is documented, and each kind of
bad value gives its exact one-line message (file, key path, problem)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import tomllib

from edge.station import config as C
from edge.station.config import ConfigError, StationConfig, example_config, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path so that messages start with the plain name ``config.toml``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load_text(folder: Path, text: str) -> StationConfig:
    (folder / "config.toml").write_text(text, encoding="utf-8")
    return load_config("config.toml")


def test_example_loads_to_defaults_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(example_config(), encoding="utf-8")
    cfg = load_config(path)
    assert cfg == StationConfig()
    assert cfg.source_path == path.resolve()
    again = StationConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    # the derived paths of the defaults
    assert cfg.outbox_path == Path("/var/lib/microseis/outbox.sqlite")
    assert cfg.archive_dir == Path("/var/lib/microseis/archive")
    assert cfg.models_dir == Path("/var/lib/microseis/models")
    assert cfg.bundle_path == REPO / "edge" / "models" / "default.msb"
    assert cfg.trusted_key_paths == [REPO / "edge" / "keys"]


def test_round_trip_of_a_full_config(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pw").write_text("s3cret\n")
    text = """
[station]
id = "CH.SLP1"
location = "00"
channels = ["EHZ", "EH1", "EH2"]
sampling_rate = 200
[source]
kind = "replay"
files = ["data/a.mseed", "/abs/b.mseed"]
speed = 0
faults = "drop=0.01,unplug=40:5"
[trigger]
sta_s = 0.5
weights = { EHZ = 2.0, EH1 = 1 }
warmup_s = 12.5
[magnitude]
sensitivity = 1.2e9
[mqtt]
host = "broker.example.org"
port = 8883
username = "slp1"
password_file = "mqtt.pw"
tls_ca = "certs/ca.pem"
[archive]
path = "arch"
retention_days = 0
[state]
dir = "state"
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.station.sampling_rate == 200.0 and isinstance(cfg.station.sampling_rate, float)
    assert cfg.station.network == "CH" and cfg.station.code == "SLP1"
    assert cfg.source.files == [str(tmp_path / "data" / "a.mseed"), "/abs/b.mseed"]
    assert cfg.trigger.sta_s == 0.5 and cfg.trigger.weights == {"EHZ": 2.0, "EH1": 1.0}
    assert cfg.trigger.warmup_s == 12.5
    assert cfg.mqtt.password == "s3cret" and cfg.mqtt.enabled is True
    assert cfg.mqtt.tls_ca == str(tmp_path / "certs" / "ca.pem")
    from edge.comms.mqtt_settings import MqttConfig

    assert isinstance(cfg.mqtt, MqttConfig)  # goes wherever a MqttConfig goes
    assert cfg.archive_dir == tmp_path / "arch"
    assert cfg.outbox_path == tmp_path / "state" / "outbox.sqlite"
    d = cfg.to_dict()
    assert "password" not in d["mqtt"]  # the secret stays in its file
    assert StationConfig.from_dict(d, source="again") == cfg


def test_every_key_is_in_the_docs() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    parts = re.split(r"^### `\[(\w+)\]`", text, flags=re.M)
    tables = dict(zip(parts[1::2], parts[2::2]))
    keys = C.example_keys()
    assert len(keys) > 50
    missing = [k for k in keys if f"| `{k.split('.')[1]}` |" not in tables.get(k.split(".")[0], "")]
    assert not missing, f"docs/configuration.md lacks {missing} (python -m edge.schema.docs --write)"


def test_every_key_has_a_meaning() -> None:
    """Every key of every section, [trigger] and [mqtt] included, declares its description
    (the example and the docs are generated from it)."""
    from edge.schema.core import struct_type
    from edge.schema.render import field_docs

    sections = field_docs(StationConfig)
    assert [s.key for s in sections] == list(C.SECTIONS) and all(s.doc for s in sections)
    undocumented = [f"{s.key}.{f.key}" for s in sections for f in field_docs(struct_type(s.type)) if not f.doc]
    assert not undocumented


BAD = [
    # unknown keys and sections, with a suggestion
    ("[mqtt]\nhots = \"broker\"\n", "config.toml: unknown key [mqtt] hots (did you mean host?)"),
    ("[trigger]\nsta = 0.3\n", "config.toml: unknown key [trigger] sta (did you mean sta_s?)"),
    ("[tigger]\nsta_s = 0.3\n", "config.toml: unknown section [tigger] (did you mean trigger?)"),
    ("id = \"XX.S1\"\n", "config.toml: unknown top-level key id (keys belong in a [section])"),
    ("[station]\nzzz = 1\n", "config.toml: unknown key [station] zzz"),
    ("station = 3\n", "config.toml: [station] must be a table (section), got integer 3"),
    # wrong types
    ("[mqtt]\nport = \"1883\"\n", "config.toml: [mqtt] port: expected an integer, got string \"1883\""),
    ("[event]\nmc_passes = 2.5\n", "config.toml: [event] mc_passes: expected an integer, got float 2.5"),
    ("[archive]\nenabled = \"yes\"\n",
     "config.toml: [archive] enabled: expected a boolean (true or false), got string \"yes\""),
    ("[health]\ninterval_s = true\n", "config.toml: [health] interval_s: expected a number, got boolean true"),
    ("[source]\nkind = \"replay\"\nfiles = [\"a.mseed\", 3]\n",
     "config.toml: [source] files[1]: expected a string, got integer 3"),
    ("[station]\nchannels = \"HHZ\"\n",
     "config.toml: [station] channels: expected an array of strings, got string \"HHZ\""),
    ("[trigger]\nweights = { HHZ = \"x\" }\n",
     "config.toml: [trigger] weights.HHZ: expected a number, got string \"x\""),
    ("[source]\nkind = \"usb\"\n",
     "config.toml: [source] kind: must be one of \"serial\", \"simulate\", \"replay\", got \"usb\""),
    ("[health]\ninterval_s = nan\n", "config.toml: [health] interval_s: must be a finite number, got nan"),
    # out of range
    ("[event]\npre_s = -1\n", "config.toml: [event] pre_s: must be >= 0, got -1"),
    ("[health]\ninterval_s = 0\n", "config.toml: [health] interval_s: must be > 0, got 0"),
    ("[archive]\nmax_disk_fraction = 1.5\n",
     "config.toml: [archive] max_disk_fraction: must be within (0, 1], got 1.5"),
    ("[model]\nthreads = 0\n", "config.toml: [model] threads: must be within [1, 64], got 0"),
    ("[magnitude]\nsensitivity = -3\n", "config.toml: [magnitude] sensitivity: must be > 0, got -3"),
    ("[magnitude]\nvp_km_s = 3.0\n", "config.toml: [magnitude] vp_km_s: must be > vs_km_s = 3.5, got 3"),
    ("[event]\npre_s = 30\npost_s = 40\n",
     "config.toml: [event] max_window_s: must be > pre_s + post_s = 70, got 60.0"),
    ("[source]\nfaults = \"drop=0.5\"\n",
     "config.toml: [source] faults: only applies to kind = \"simulate\" or \"replay\""),
    ("[source]\nkind = \"simulate\"\nfaults = \"drop=2\"\n",
     "config.toml: [source] faults: bad fault 'drop=2': a probability must be within 0..1"),
    ("[source]\nkind = \"replay\"\n",
     "config.toml: [source] files: must list at least one waveform file when kind = \"replay\""),
    # station id and channel codes
    ("[station]\nid = \"XXS1\"\n",
     "config.toml: [station] id: must be NET.STA (a 1-2 character network code, a dot, a 1-5 character "
     "station code; capital letters and digits), e.g. \"XX.S1\", got \"XXS1\""),
    ("[station]\nid = \"xx.s1\"\n",
     "config.toml: [station] id: must be NET.STA (a 1-2 character network code, a dot, a 1-5 character "
     "station code; capital letters and digits), e.g. \"XX.S1\", got \"xx.s1\""),
    ("[station]\nlocation = \"000\"\n",
     "config.toml: [station] location: must be empty or 1-2 capital letters/digits, got \"000\""),
    ("[station]\nchannels = [\"HHZ\", \"HHN\"]\n",
     "config.toml: [station] channels: must list 3 channel codes (vertical and two horizontals), got 2"),
    ("[station]\nchannels = [\"HHZ\", \"HHN\", \"HHX\"]\n",
     "config.toml: [station] channels: each channel code must be 3 capital letters/digits ending in Z, N, E, 1 "
     "or 2 (e.g. \"HHZ\"), got \"HHX\""),
    ("[station]\nchannels = [\"HHZ\", \"HHN\", \"HH1\"]\n",
     "config.toml: [station] channels: must be one Z, N and E channel or one Z, 1 and 2 channel, "
     "got [\"HHZ\", \"HHN\", \"HH1\"]"),
    # TOML syntax, with the line
    ("[station]\nid = \n", "config.toml: line 2, column 6: invalid TOML: Invalid value"),
    ("[station\n", "config.toml: line 1, column 9: invalid TOML: Expected ']' at the end of a table declaration"),
    ("[station]\nid = \"XX.S1\"\nid = \"XX.S2\"\n",
     "config.toml: line 3, column 13: invalid TOML: Cannot overwrite a value"),
    # mqtt password
    ("[mqtt]\npassword = \"a\"\npassword_file = \"pw\"\n",
     "config.toml: [mqtt] password_file: set either password or password_file, not both"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m.split(": ", 1)[1][:48] for _, m in BAD])
def test_bad_value_message(in_tmp: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load_text(in_tmp, text)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_trigger_errors_name_the_key(in_tmp: Path) -> None:
    """[trigger] is TriggerConfig: its bounds and relations, under the section's key path."""
    with pytest.raises(ConfigError) as err:
        _load_text(in_tmp, "[trigger]\nsta_s = -1\n")
    assert str(err.value).startswith("config.toml: [trigger] sta_s")
    assert "-1" in str(err.value)


def test_mqtt_errors_name_the_key(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load_text(in_tmp, "[mqtt]\nport = 70000\n")
    assert str(err.value).startswith("config.toml: [mqtt] port")


def test_every_problem_is_reported(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load_text(in_tmp, "[station]\nid = \"bad\"\n[mqtt]\nhots = \"x\"\n[event]\npre_s = -1\n")
    assert sorted(err.value.errors) == sorted([
        "config.toml: unknown key [mqtt] hots (did you mean host?)",
        "config.toml: [station] id: must be NET.STA (a 1-2 character network code, a dot, a 1-5 character "
        "station code; capital letters and digits), e.g. \"XX.S1\", got \"bad\"",
        "config.toml: [event] pre_s: must be >= 0, got -1",
    ])


def test_missing_file(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config("config.toml")
    assert str(err.value) == "config.toml: cannot read: no such file"


def test_unreadable_file(in_tmp: Path) -> None:
    (in_tmp / "config.toml").mkdir()
    with pytest.raises(ConfigError) as err:
        load_config("config.toml")
    assert str(err.value) == "config.toml: cannot read: is a directory"
    (in_tmp / "bin.toml").write_bytes(b"[station]\nid = \"\xff\"\n")
    with pytest.raises(ConfigError) as err:
        load_config("bin.toml")
    assert str(err.value) == "bin.toml: cannot read: not UTF-8 text (byte 16)"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(in_tmp: Path) -> None:
    p = in_tmp / "config.toml"
    p.write_text("")
    p.chmod(0)
    try:
        with pytest.raises(ConfigError) as err:
            load_config("config.toml")
        assert str(err.value) == "config.toml: cannot read: permission denied"
    finally:
        p.chmod(0o600)


def test_password_file(in_tmp: Path) -> None:
    (in_tmp / "creds").mkdir()
    (in_tmp / "creds" / "mqtt").write_text("hunter2\n")
    cfg = _load_text(in_tmp, "[mqtt]\nusername = \"s1\"\npassword_file = \"creds/mqtt\"\n")
    assert cfg.mqtt.password == "hunter2"
    assert cfg.mqtt.password_file == str(in_tmp / "creds" / "mqtt")
    with pytest.raises(ConfigError) as err:
        _load_text(in_tmp, "[mqtt]\npassword_file = \"/nonexistent/pw\"\n")
    assert str(err.value) == "config.toml: [mqtt] password_file: cannot read /nonexistent/pw: no such file"


def test_from_dict_source_and_relative_paths() -> None:
    with pytest.raises(ConfigError, match=r"^<api>: \[health\] interval_s: must be > 0, got -5$"):
        StationConfig.from_dict({"health": {"interval_s": -5}}, source="<api>")
    cfg = StationConfig.from_dict({"archive": {"path": "arch"}})
    assert cfg.archive.path == "arch"  # no base_dir: left relative
    cfg = StationConfig.from_dict({"archive": {"path": "arch"}}, base_dir="/srv/st")
    assert cfg.archive.path == "/srv/st/arch"


def test_example_is_valid_toml_with_every_key_commented() -> None:
    text = example_config()
    doc = tomllib.loads(text)
    assert list(doc) == list(C.SECTIONS)
    keys = C.example_keys(text)
    assert "mqtt.password_file" in keys and "magnitude.sensitivity" in keys and "trigger.warmup_s" in keys
    assert len(keys) == len(set(keys))
    for line in text.splitlines():
        assert len(line) <= 100, line


def test_check_and_example_through_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The configuration's commands live in ``microseis run`` (no second CLI in the module)."""
    from edge.cli import main

    assert main(["run", "--print-example-config"]) == 0
    assert capsys.readouterr().out == example_config()
    bad = tmp_path / "bad.toml"
    bad.write_text("[health]\ninterval_s = -1\n")
    assert main(["run", "--config", str(bad), "--check"]) == 2
    assert f"{bad}: [health] interval_s: must be > 0, got -1" in capsys.readouterr().err
    assert not hasattr(C, "main")


def test_password_without_username_is_a_config_error(tmp_path):
    """Caught by the check, not later when the daemon starts its link."""
    from edge.station.config import ConfigError, load_config

    pw = tmp_path / "mqtt.pw"
    pw.write_text("secret\n")
    for body, key in ((f'[mqtt]\npassword_file = "{pw}"\n', "password_file"), ('[mqtt]\npassword = "x"\n', "password")):
        path = tmp_path / "c.toml"
        path.write_text(body)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert f"[mqtt] {key}: needs [mqtt] username" in str(err.value)
    path.write_text(f'[mqtt]\nusername = "station"\npassword_file = "{pw}"\n')
    assert load_config(path).mqtt.password == "secret"
