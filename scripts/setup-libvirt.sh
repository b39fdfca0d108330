#!/usr/bin/env bash
# Prepare a Debian 12 machine (root, no systemd) for drover's libvirt compute driver.
#
# Idempotent: installs the apt packages (only the missing ones), makes QEMU run as
# root (without it every domain start hangs ~48 s on these machines), starts virtlogd
# and libvirtd if they are not running (libvirtd under `tini -s`, see below), waits
# until qemu:///system answers and pip-installs libvirt-python into the current Python.
# Leaves virtlogd and libvirtd running in the background (no init system here).
#
# Environment:
#   PYTHON            python to install libvirt-python into (default: python3)
#   SKIP_PIP=1        do not pip-install libvirt-python
#   LIBVIRT_WAIT=60   seconds to wait for libvirtd to answer
set -euo pipefail

PYTHON="${PYTHON:-python3}"
LIBVIRT_WAIT="${LIBVIRT_WAIT:-60}"
PKGS=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
      libvirt-clients libvirt-dev pkg-config gcc python3-dev cpio gzip tini)

log() { echo "setup-libvirt: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

# 1. packages --------------------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # policy-rc.d: no init system here, keep maintainer scripts from trying to start daemons
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "apt packages already installed"
fi

# 2. qemu.conf: run guests as root ---------------------------------------------------
QEMU_CONF=/etc/libvirt/qemu.conf
changed=0
set_conf() {  # key value
  local key=$1 val=$2
  if grep -Eq "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*${val}[[:space:]]*$" "$QEMU_CONF"; then
    return
  fi
  if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$QEMU_CONF"; then
    $SUDO sed -i -E "s|^[[:space:]]*${key}[[:space:]]*=.*|${key} = ${val}|" "$QEMU_CONF"
  else
    echo "${key} = ${val}" | $SUDO tee -a "$QEMU_CONF" >/dev/null
  fi
  changed=1
}
set_conf user '"root"'
set_conf group '"root"'
# no AppArmor/SELinux labelling games on CI machines
set_conf security_driver '"none"'
if ((changed)); then log "configured $QEMU_CONF (user/group root)"; fi

# 3. daemons ---------------------------------------------------------------------------
running() {  # daemon name: is it up (its pid file names a live process)?
  local pidfile=/run/$1.pid
  [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && return 0
  pgrep -x "$1" >/dev/null 2>&1
}
if ((changed)) && running libvirtd; then
  # it was started before qemu.conf was right: restart it (by its pid file)
  log "restarting libvirtd to pick up qemu.conf"
  if [[ -s /run/libvirtd.pid ]]; then
    $SUDO kill "$(cat /run/libvirtd.pid)" || true
    for _ in $(seq 100); do running libvirtd || break; sleep 0.1; done
  else
    log "warning: libvirtd runs without /run/libvirtd.pid; restart it yourself"
  fi
fi
$SUDO mkdir -p /var/run/libvirt /var/lib/libvirt/qemu /var/log/libvirt/qemu
if ! running virtlogd; then
  log "starting virtlogd"
  $SUDO virtlogd -d
fi
if ! running libvirtd; then
  # Under `tini -s` (a child subreaper), not `libvirtd -d`: QEMU processes are then reaped
  # at once when they exit. Orphans reparented to this machine's PID 1 stay zombies for a
  # second or two, and libvirt's destroy waits for the pid to vanish (1.6-2 s vs 0.2 s).
  if command -v tini >/dev/null; then
    log "starting libvirtd (under tini -s)"
    $SUDO setsid tini -s -- libvirtd </dev/null >>/var/log/libvirt/libvirtd.log 2>&1 &
  else
    log "starting libvirtd -d"
    $SUDO libvirtd -d
  fi
fi

deadline=$((SECONDS + LIBVIRT_WAIT))
until virsh -c qemu:///system version >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then
    log "libvirtd did not answer on qemu:///system within ${LIBVIRT_WAIT}s"
    virsh -c qemu:///system version || true
    exit 1
  fi
  sleep 0.5
done
virsh -c qemu:///system version >&2

# 4. libvirt-python -------------------------------------------------------------------
if [[ "${SKIP_PIP:-0}" != 1 ]]; then
  if "$PYTHON" -c 'import libvirt' 2>/dev/null; then
    log "libvirt-python already importable in $PYTHON"
  else
    log "pip-installing libvirt-python into $PYTHON"
    "$PYTHON" -m pip install -q 'libvirt-python>=9'
  fi
  "$PYTHON" -c 'import libvirt; print("libvirt-python", libvirt.getVersion())' >&2
fi
log "ok"
