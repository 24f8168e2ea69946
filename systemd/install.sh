#!/usr/bin/env bash
# Install (or upgrade) the microseis-edge station daemon from this source tree:
# system user, virtual environment, configuration, systemd unit, udev rule.
# Idempotent: run it again after `git pull` to upgrade; it never overwrites
# /etc/microseis/config.toml or an existing udev rule. See docs/deployment.md.
#
#   sudo ./systemd/install.sh [--prefix /opt/microseis] [--config /etc/microseis/config.toml]
#                             [--python python3] [--no-start] [--dry-run]
#
#   --prefix DIR   where the virtual environment goes (DIR/venv) and the unit points
#   --config FILE  the configuration the unit runs with (written from the example if absent)
#   --python CMD   the Python that makes the venv (3.10 or newer)
#   --no-start     enable the service but do not start or restart it
#   --dry-run      print every action without doing any (needs no root)

# started as `sh install.sh`: the rest is bash
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
umask 022  # the venv and the unit must be readable by the service user and systemd

PREFIX=/opt/microseis
CONFIG=/etc/microseis/config.toml
PYTHON=python3
DRY=0
START=1
SERVICE_USER=microseis
SERIAL_GROUP=dialout
STATE_DIR=/var/lib/microseis
UNIT_DIR=/etc/systemd/system
UDEV_DIR=/etc/udev/rules.d
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a path"; PREFIX=${2%/}; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; PREFIX=${PREFIX%/}; shift ;;
        --config) [ $# -ge 2 ] || die "--config needs a path"; CONFIG=$2; shift 2 ;;
        --config=*) CONFIG=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs a command"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --no-start) START=0; shift ;;
        --dry-run|-n) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

case $PREFIX in /?*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
case $CONFIG in /?*) ;; *) die "--config must be an absolute path, got '$CONFIG'" ;; esac
case "$PREFIX$CONFIG" in *'#'*|*[[:space:]]*) die "--prefix and --config must not contain '#' or blanks" ;; esac
if [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "must run as root (sudo $0 ...), or use --dry-run to see what it would do"
fi
for f in pyproject.toml constraints.txt systemd/microseis.service systemd/99-digitizer.rules; do
    [ -f "$SRC/$f" ] || die "run me from the microseis-edge source tree ($SRC has no $f)"
done

VENV=$PREFIX/venv
CONF_DIR=$(dirname "$CONFIG")
UNIT=$UNIT_DIR/microseis.service
RULE=$UDEV_DIR/99-digitizer.rules

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
# quoted CMD...: the command line as one string, arguments with blanks in single quotes
quoted() {
    local q= a
    for a in "$@"; do
        case $a in *[[:space:]]*|'') a="'$a'" ;; esac
        q="$q${q:+ }$a"
    done
    printf '%s' "$q"
}
# run CMD...: do it (echoed with +), or only print it under --dry-run
run() {
    if [ "$DRY" -eq 1 ]; then
        printf '[dry-run] %s\n' "$(quoted "$@")"
    else
        printf '+ %s\n' "$(quoted "$@")"
        "$@"
    fi
}
# plan TEXT: a step that is not one simple command (a redirection), printed under --dry-run
plan() { printf '[dry-run] %s\n' "$*"; }

# ---------------------------------------------------------------- 0. preflight
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    [ "$DRY" -eq 1 ] || die "no $PYTHON on PATH (apt-get install python3 python3-venv, or --python)"
    note "warning: no $PYTHON on PATH; a real run would stop here"
elif ! "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    [ "$DRY" -eq 1 ] || die "$PYTHON is older than 3.10 or lacks venv (apt-get install python3-venv)"
    note "warning: $PYTHON is older than 3.10 or lacks venv; a real run would stop here"
else
    # the venv links to this interpreter: the service user must reach it, and ProtectHome=
    # hides /root and /home (a pyenv or conda Python there cannot run the service)
    PYREAL=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    case $PYREAL in
        /root/*|/home/*|/run/user/*)
            msg="$PYTHON is $PYREAL, which the service cannot run (ProtectHome=yes hides /root and /home); use --python /usr/bin/python3"
            [ "$DRY" -eq 1 ] || die "$msg"
            note "warning: $msg" ;;
    esac
fi
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1
if [ "$SYSTEMD_RUNNING" -eq 0 ]; then
    [ "$DRY" -eq 1 ] || die "systemd is not running here (no /run/systemd/system): this installer is for a systemd host"
    note "note: systemd is not running here; the plan is what a systemd host would do"
fi

# ---------------------------------------------------------------- 1. system user
say "system user $SERVICE_USER (supplementary group $SERIAL_GROUP)"
if ! getent group "$SERIAL_GROUP" >/dev/null 2>&1; then
    run groupadd --system "$SERIAL_GROUP"
fi
if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
    groups=" $(id -nG "$SERVICE_USER") "
    if [[ $groups == *" $SERIAL_GROUP "* ]]; then
        note "$SERVICE_USER exists and is in $SERIAL_GROUP"
    else
        run usermod --append --groups "$SERIAL_GROUP" "$SERVICE_USER"
    fi
else
    run useradd --system --user-group --groups "$SERIAL_GROUP" \
        --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
        --comment "microseis-edge station" "$SERVICE_USER"
fi

# ---------------------------------------------------------------- 2. venv + package
say "virtual environment $VENV"
if [ -x "$VENV/bin/python" ]; then
    note "exists, upgrading the package in it"
else
    run mkdir -p "$PREFIX"
    run "$PYTHON" -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
# pip builds in the source tree: remove setuptools' build/ first, or a module deleted upstream
# would linger in build/lib and come back in the wheel
if [ -e "$SRC/build" ]; then
    run rm -rf "$SRC/build"
fi
# pip rebuilds and reinstalls a local source tree every time, so this is also the upgrade
run "$VENV/bin/python" -m pip install -c "$SRC/constraints.txt" "microseis-edge[edge] @ file://$SRC"
# and give build/ and *.egg-info back to whoever owns the checkout (not root)
OWNER=$(stat -c %u:%g "$SRC")
if [ "$OWNER" != 0:0 ]; then
    run find "$SRC" -maxdepth 1 \( -name build -o -name "*.egg-info" \) -exec chown -R "$OWNER" {} +
fi
run install -d -m 0755 "$PREFIX/docs"
run install -m 0644 "$SRC/docs/deployment.md" "$SRC/docs/configuration.md" "$SRC/docs/bundle.md" "$PREFIX/docs/"

# ---------------------------------------------------------------- 3. configuration
say "configuration $CONFIG"
run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
if [ -e "$CONFIG" ]; then
    note "exists, kept (never overwritten)"
    if [ "$DRY" -eq 1 ]; then
        plan "$VENV/bin/microseis run --config $CONFIG --check   (a warning if the new version rejects it)"
    elif ! "$VENV/bin/microseis" run --config "$CONFIG" --check; then
        note "warning: $CONFIG has problems (above); the service will not start until they are fixed"
    fi
else
    if [ "$DRY" -eq 1 ]; then
        plan "$VENV/bin/microseis run --print-example-config > $CONFIG"
    else
        printf '+ %s\n' "$VENV/bin/microseis run --print-example-config > $CONFIG"
        "$VENV/bin/microseis" run --print-example-config > "$CONFIG.new"
        mv "$CONFIG.new" "$CONFIG"
    fi
    run chown "root:$SERVICE_USER" "$CONFIG"
    run chmod 0640 "$CONFIG"
    note "edit it: at least [station] id, channels and [mqtt] host (docs/configuration.md)"
fi

# ---------------------------------------------------------------- 4. systemd unit
say "systemd unit $UNIT"
# the unit as shipped names /opt/microseis and /etc/microseis/config.toml
RENDER="s#/etc/microseis/config.toml#$CONFIG#g; s#/opt/microseis#$PREFIX#g"
if [ "$DRY" -eq 1 ]; then
    UNIT_TMP=${TMPDIR:-/tmp}/microseis.service.XXXXXX
    plan "sed '$RENDER' $SRC/systemd/microseis.service > $UNIT_TMP"
else
    UNIT_TMP=$(mktemp)
    trap 'rm -f "$UNIT_TMP"' EXIT
    sed "$RENDER" "$SRC/systemd/microseis.service" > "$UNIT_TMP"
fi
# always replaced: local changes belong in a drop-in (systemctl edit microseis)
run install -D -m 0644 "$UNIT_TMP" "$UNIT"

# ---------------------------------------------------------------- 5. udev rule
say "udev rule $RULE"
if [ -e "$RULE" ]; then
    note "exists, kept (it holds your adapter's IDs)"
else
    run install -D -m 0644 "$SRC/systemd/99-digitizer.rules" "$RULE"
    note "edit ATTRS{idVendor}/ATTRS{idProduct} in it for your adapter (see the file)"
fi
run udevadm control --reload
run udevadm trigger --subsystem-match=tty --action=add

# ---------------------------------------------------------------- 6. enable + start
say "enable the service"
run systemctl daemon-reload
if [ "$START" -eq 0 ]; then
    run systemctl enable microseis.service
elif [ "$SYSTEMD_RUNNING" -eq 1 ] && systemctl is-active --quiet microseis.service; then
    run systemctl enable microseis.service
    # an upgrade: the running daemon still has the old code
    run systemctl restart microseis.service ||
        die "microseis.service did not restart; see: journalctl -u microseis -n 50"
else
    run systemctl enable --now microseis.service ||
        die "microseis.service did not start; see: journalctl -u microseis -n 50"
fi

say "done. Logs: journalctl -u microseis -f    Status: systemctl status microseis"
if [ "$DRY" -eq 1 ]; then
    echo "(dry run: nothing was changed)"
fi
