"""systemd/: the unit verifies, carries its hardening and keeps its exposure score; its
watchdog matches what the daemon sends; install.sh --dry-run plans every step without touching
the system and refuses to run for real without root; the udev rule is well-formed.

That the daemon really sends READY=1, WATCHDOG=1 from its main loop and STOPPING=1 to a
notify socket is tested on the running daemon (tests/test_daemon.py,
``test_silent_digitizer_still_feeds_the_watchdog``)."""
from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "microseis.service"
RULES = REPO / "systemd" / "99-digitizer.rules"
INSTALL = REPO / "systemd" / "install.sh"
DEPLOYMENT = REPO / "docs" / "deployment.md"
ANALYZE = shutil.which("systemd-analyze")

#: ``systemd-analyze security --offline=true`` of the unit, as measured and written in
#: docs/deployment.md. A hardening regression raises it and fails the test; after a deliberate
#: change, re-measure and update both.
EXPOSURE = "1.5"


def _unit_keys(text: str | None = None) -> dict[str, list[str]]:
    """``{"Section.Key": [values...]}`` of the unit (keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in (UNIT.read_text() if text is None else text).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def _seconds(value: str) -> float:
    """A systemd time span as used here ("30", "30s", "2min")."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|ms)?", value.strip())
    assert m, f"unexpected time span {value!r}"
    return float(m.group(1)) * {None: 1, "s": 1, "sec": 1, "min": 60, "ms": 1e-3}[m.group(2)]


REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/opt/microseis/venv/bin/microseis run --config /etc/microseis/config.toml",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartSec": "5",
    "RestartPreventExitStatus": "2",
    "User": "microseis",
    "Group": "microseis",
    "SupplementaryGroups": "dialout",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "DevicePolicy": "closed",
    "ReadWritePaths": "/var/lib/microseis",
    "StateDirectory": "microseis",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
    "UMask": "0027",
}


# ---------------------------------------------------------------------------- the unit, statically
@pytest.mark.parametrize("key, value", sorted(REQUIRED.items()))
def test_unit_has_hardening_key(key: str, value: str) -> None:
    keys = _unit_keys()
    assert f"Service.{key}" in keys, f"microseis.service lacks {key}="
    assert value in keys[f"Service.{key}"], f"{key}={keys[f'Service.{key}']}, want {value!r}"


def test_unit_devices_and_filters() -> None:
    keys = _unit_keys()
    allow = keys["Service.DeviceAllow"]
    assert "/dev/digitizer rw" in allow
    assert "char-ttyUSB rw" in allow and "char-ttyACM rw" in allow
    assert keys["Service.SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert keys["Service.LimitNOFILE"]
    assert keys["Install.WantedBy"] == ["multi-user.target"]
    # PrivateDevices= would hide the digitizer; PrivateUsers= would drop the dialout group
    assert "Service.PrivateDevices" not in keys and "Service.PrivateUsers" not in keys


def test_unit_restart_policy() -> None:
    keys = _unit_keys()
    # an unattended station never stops restarting after a crash or a watchdog kill
    assert keys["Unit.StartLimitIntervalSec"] == ["0"]
    # the daemon has no SIGHUP handler: a `kill -HUP` reload would kill it
    assert "Service.ExecReload" not in keys


# ---------------------------------------------------------------------------- watchdog vs. daemon
def test_watchdog_outlasts_the_loops_longest_wait() -> None:
    """With the digitizer unplugged the main loop still turns once per reconnect attempt (at
    most retry_max_s apart): that must stay well inside the half watchdog interval."""
    from firmware_bridge.serial_reader import SerialSettings

    watchdog = _seconds(_unit_keys()["Service.WatchdogSec"][0])
    s = SerialSettings(port="/dev/digitizer")
    assert max(s.retry_max_s, s.read_timeout_s) < watchdog / 4


def test_stop_timeout_covers_the_clean_shutdown() -> None:
    """SIGTERM -> flush the outbox, publish "stopped", disconnect (MqttLink.stop) must fit in
    TimeoutStopSec, or systemd SIGKILLs the daemon half-way."""
    from edge.comms.mqtt_link import MqttLink

    params = inspect.signature(MqttLink.stop).parameters
    needed = params["flush_timeout_s"].default + params["timeout_s"].default
    assert needed + 5 < _seconds(_unit_keys()["Service.TimeoutStopSec"][0])


def _notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2.0)
    return sock, path


def test_notifier_speaks_to_a_real_notify_socket(tmp_path: Path) -> None:
    """What systemd receives, through a real AF_UNIX datagram socket, with the environment
    systemd gives a Type=notify unit with this WatchdogSec."""
    from edge.station.sd_notify import Notifier

    usec = int(_seconds(_unit_keys()["Service.WatchdogSec"][0]) * 1_000_000)
    sock, path = _notify_socket(tmp_path)
    with sock:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(usec), "WATCHDOG_PID": str(os.getpid())})
        assert n.enabled
        assert n.watchdog_interval_s == pytest.approx(usec / 2e6)  # pings at half the timeout
        assert n.ready("station XX.S1")
        assert sock.recv(4096) == b"READY=1\nSTATUS=station XX.S1"
        t0 = 1000.0
        assert n.watchdog(now=t0)
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert not n.watchdog(now=t0 + n.watchdog_interval_s - 0.1)  # not yet due
        assert n.watchdog(now=t0 + n.watchdog_interval_s)
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        assert n.sent == ["READY=1\nSTATUS=station XX.S1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_abstract_socket_and_foreign_watchdog() -> None:
    from edge.station.sd_notify import Notifier

    name = f"microseis-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        # WATCHDOG_PID names another process (a child that inherited the environment): no pings
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
        assert n.watchdog_interval_s is None and not n.watchdog(now=1e6)
        assert n.notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_notifier_without_systemd_is_a_no_op() -> None:
    from edge.station.sd_notify import Notifier

    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert not n.ready() and not n.watchdog() and not n.stopping() and n.sent == []
    # a socket that went away (systemd restarted) is not an error
    assert not Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"}).ready()


# ---------------------------------------------------------------------------- systemd-analyze
def _analyze_works() -> bool:
    if ANALYZE is None:
        return False
    r = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True)
    return r.returncode == 0


needs_analyze = pytest.mark.skipif(
    not _analyze_works(),
    reason="systemd-analyze is not installed or cannot run here (Debian: apt-get install systemd)")


@needs_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` (works without systemd as PID 1) on a copy whose ExecStart is
    /bin/true, because /opt/microseis/venv/bin/microseis does not exist on a build machine,
    with the LoadCredential= drop-in that docs/deployment.md tells you to add; verify reads
    drop-ins next to the unit and warns about unknown keys without failing, so no output at all
    is the pass."""
    copy = tmp_path / "microseis.service"
    text, n = re.subn(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text())
    assert n == 1
    copy.write_text(text)
    r = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    dropin = tmp_path / "microseis.service.d" / "credentials.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Service]\nLoadCredential=mqtt:/etc/microseis/mqtt-password\n")
    r = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    # the only complaint about the real unit is the missing binary
    r = subprocess.run([ANALYZE, "verify", str(UNIT)], capture_output=True, text=True, timeout=120)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if ln.strip() and "/opt/microseis/venv/bin/microseis" not in ln]
    assert not problems, problems


@needs_analyze
def test_security_exposure_is_low_and_documented() -> None:
    r = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for microseis\.service: (\d+\.\d+) (\w+)", out)
    assert m, out
    assert float(m.group(1)) <= float(EXPOSURE), f"exposure {m.group(1)} > {EXPOSURE}: the hardening regressed\n{out}"
    doc = DEPLOYMENT.read_text()
    assert f"Overall exposure level for microseis.service: {EXPOSURE} OK" in doc, \
        "docs/deployment.md must quote the measured summary line"


# ---------------------------------------------------------------------------- udev rule
_UDEV_MATCH = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
               "DRIVERS", "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}
_UDEV_ASSIGN = {"OWNER", "GROUP", "MODE", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS", "SECLABEL"}
_UDEV_BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
_UDEV_TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}"]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def _udev_tokens(line: str) -> list[tuple[str, str, str, str]]:
    """(KEY, {attr} or "", operator, value) of one rule line; fails on anything malformed."""
    out, pos = [], 0
    while pos < len(line):
        m = _UDEV_TOKEN.match(line, pos)
        assert m, f"udev rule: cannot parse at {line[pos:]!r}"
        out.append((m.group(1), m.group(2) or "", m.group(3), m.group(4)))
        pos = m.end()
    return out


def test_udev_rule() -> None:
    text = RULES.read_text()
    rule = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(rule) == 1
    tokens = _udev_tokens(rule[0])
    for key, attr, op, _value in tokens:
        assert key in _UDEV_MATCH | _UDEV_ASSIGN | _UDEV_BOTH, f"unknown udev key {key}"
        if key in _UDEV_MATCH:
            assert op in ("==", "!="), f"{key} is a match key, got {op}"
        if key in _UDEV_ASSIGN:
            assert op in ("=", "+=", "-=", ":="), f"{key} is an assignment, got {op}"
        if key in {"ATTR", "ATTRS", "ENV", "SYSCTL", "CONST", "SECLABEL"}:
            assert attr, f"{key} needs {{name}}"
        elif key not in {"RUN", "IMPORT", "TEST"}:
            assert not attr, f"{key} takes no {{name}}"
    d = {f"{k}{a}{op}": v for k, a, op, v in tokens}
    assert d['SUBSYSTEM=='] == "tty"
    assert re.fullmatch(r"[0-9a-f]{4}", d["ATTRS{idVendor}=="])
    assert re.fullmatch(r"[0-9a-f]{4}", d["ATTRS{idProduct}=="])
    assert d["SYMLINK+="] == "digitizer"  # += keeps the ttyUSB0/ttyACM0 name, adds /dev/digitizer
    assert d["GROUP="] == "dialout" and d["MODE="] == "0660"
    assert d["ENV{ID_MM_DEVICE_IGNORE}="] == "1" and d["TAG+="] == "systemd"
    # the unit allows the symlink and reads it through the group the rule gives
    keys = _unit_keys()
    assert "/dev/digitizer rw" in keys["Service.DeviceAllow"] and keys["Service.SupplementaryGroups"] == ["dialout"]


def test_udevadm_verify(tmp_path: Path) -> None:
    udevadm = shutil.which("udevadm") or ("/usr/bin/udevadm" if os.path.exists("/usr/bin/udevadm") else None)
    if udevadm is None:
        pytest.skip("udevadm is not installed (the rule is still parsed by test_udev_rule)")
    if subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode != 0:
        pytest.skip("this udevadm has no verify (systemd < 254; the rule is parsed by test_udev_rule)")
    r = subprocess.run([udevadm, "verify", "--resolve-names=never", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------- install.sh
def _install(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _plan(out: str) -> list[str]:
    """The commands a dry run would run, in order (its ``[dry-run] `` lines)."""
    return [ln.removeprefix("[dry-run] ") for ln in out.splitlines() if ln.startswith("[dry-run] ")]


def _step(plan: list[str], pred) -> int:
    """Index of the first planned command for which ``pred`` holds (fails when none does)."""
    hits = [i for i, cmd in enumerate(plan) if pred(cmd)]
    assert hits, "no such step in the plan:\n" + "\n".join(plan)
    return hits[0]


def test_install_script_parses_and_runs_by_its_shebang(tmp_path: Path) -> None:
    """Executable, runs through its own interpreter line, and passes bash's syntax check (and
    shellcheck's warnings, where shellcheck is installed)."""
    assert os.access(INSTALL, os.X_OK)
    r = subprocess.run([str(INSTALL), "--dry-run", "--prefix", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert _plan(r.stdout)
    r = subprocess.run(["bash", "-n", str(INSTALL)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        r = subprocess.run([shellcheck, "-S", "warning", str(INSTALL)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_install_dry_run_plans_every_step_and_changes_nothing(tmp_path: Path) -> None:
    prefix, config = tmp_path / "opt" / "microseis", tmp_path / "etc" / "microseis" / "config.toml"
    before = sorted(tmp_path.rglob("*"))
    r = _install("--dry-run", "--prefix", str(prefix), "--config", str(config), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    plan = _plan(out)
    planned = [
        "--system --user-group --groups dialout --home-dir /var/lib/microseis",
        f"python3 -m venv {prefix}/venv",
        f"{prefix}/venv/bin/python -m pip install -c {REPO}/constraints.txt 'microseis-edge[edge] @ file://{REPO}'",
        f"install -d -m 0750 -o root -g microseis {config.parent}",
        f"chmod 0640 {config}",
        f"s#/etc/microseis/config.toml#{config}#g; s#/opt/microseis#{prefix}#g",
        "/etc/systemd/system/microseis.service",
        f"install -D -m 0644 {REPO}/systemd/99-digitizer.rules /etc/udev/rules.d/99-digitizer.rules",
        "udevadm control --reload",
        "systemctl daemon-reload",
        "systemctl enable --now microseis.service",
    ]
    text = "\n".join(plan)
    for step in planned:
        assert step in text, f"{step!r} not planned:\n{out}"
    if shutil.which("getent") and subprocess.run(["getent", "passwd", "microseis"]).returncode != 0:
        assert any(cmd.startswith("useradd --system") for cmd in plan)
    # the example configuration is written by the installed station software
    example = _step(plan, lambda c: c.startswith(f"{prefix}/venv/bin/") and c.endswith(f"> {config}"))
    # the order matters: the unit and the rule are in place before daemon-reload and start;
    # the configuration is written once the venv has the software, and locked down after
    venv = _step(plan, lambda c: c.startswith("python3 -m venv "))
    pip = _step(plan, lambda c: "-m pip install -c " in c)
    assert venv < pip < example < _step(plan, lambda c: c == f"chmod 0640 {config}")
    unit = _step(plan, lambda c: c.endswith(" /etc/systemd/system/microseis.service") and c.startswith("install "))
    rule = _step(plan, lambda c: c.endswith(" /etc/udev/rules.d/99-digitizer.rules"))
    reload_ = _step(plan, lambda c: c == "systemctl daemon-reload")
    assert max(unit, rule) < reload_ < _step(plan, lambda c: c == "systemctl enable --now microseis.service")
    assert not any(ln.startswith("+ ") for ln in out.splitlines()), "a dry run ran something"
    assert out.rstrip().endswith("(dry run: nothing was changed)")
    assert sorted(tmp_path.rglob("*")) == before, "a dry run created files"
    assert not prefix.exists()


def test_install_dry_run_as_sh_reexecs_bash(tmp_path: Path) -> None:
    """`sh install.sh` (dash on Debian) must work too: the script re-executes itself in bash."""
    r = subprocess.run(["sh", str(INSTALL), "--dry-run", "--prefix", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"[dry-run] python3 -m venv {tmp_path / 'p'}/venv" in r.stdout


def test_install_keeps_an_existing_config(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "microseis" / "config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text("[station]\nid = \"CH.MINE\"\n")
    r = _install("--dry-run", "--prefix", str(tmp_path / "opt"), "--config", str(conf))
    assert r.returncode == 0, r.stderr
    plan = _plan(r.stdout)
    assert not any(c.endswith(f"> {conf}") for c in plan), plan  # no example written over it
    assert "exists, kept" in r.stdout
    # an upgrade re-checks the kept file with the newly installed software
    _step(plan, lambda c: c.startswith(str(tmp_path / "opt" / "venv" / "bin")) and "check" in c
          and str(conf) in c)
    assert conf.read_text() == "[station]\nid = \"CH.MINE\"\n"


def test_install_no_start(tmp_path: Path) -> None:
    r = _install("--dry-run", "--no-start", "--prefix", str(tmp_path / "opt"))
    assert r.returncode == 0, r.stderr
    assert "[dry-run] systemctl enable microseis.service" in r.stdout
    assert "--now" not in r.stdout and "restart" not in r.stdout


def test_install_rejects_bad_options(tmp_path: Path) -> None:
    r = _install("--dry-run", "--bogus")
    assert r.returncode != 0 and "unknown option --bogus" in r.stderr
    r = _install("--dry-run", "--prefix", "relative/dir")
    assert r.returncode != 0 and "absolute" in r.stderr
    r = _install("--dry-run", "--config", "/etc/with space/config.toml")
    assert r.returncode != 0 and "blanks" in r.stderr
    r = _install("--help")
    assert r.returncode == 0 and "--dry-run" in r.stdout


def test_install_refuses_non_root_without_dry_run() -> None:
    cmd = ["sh", str(INSTALL), "--prefix", "/nonexistent/microseis"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv to drop privileges")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "must run as root" in r.stderr and "--dry-run" in r.stderr
    assert r.stdout == ""
