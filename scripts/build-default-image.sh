#!/usr/bin/env bash
# Build drover's default bootable image: a Debian cloud kernel (vmlinuz) plus a tiny
# busybox-static initramfs whose /init prints a ready marker on the serial console.
# Booted by direct kernel boot (disk_format "kernel"); under TCG it is up in ~1-2 s.
#
# usage: scripts/build-default-image.sh [OUTDIR]     (default: images/build)
#
# Only Debian packages are used (apt-get download + dpkg-deb -x; nothing is installed
# except the cpio tool when missing). Idempotent: an existing OUTDIR/vmlinuz and
# OUTDIR/initrd.img are kept unless FORCE=1. Prints the two paths (KEY=path lines).
#
# Environment: FORCE=1 rebuild; KERNEL_PKG=linux-image-...-cloud-amd64 pin a kernel.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$here/images/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
kernel="$out/vmlinuz"
initrd="$out/initrd.img"
log() { echo "build-default-image: $*" >&2; }

print_paths() {
  echo "KERNEL=$kernel"
  echo "INITRD=$initrd"
}

if [[ "${FORCE:-0}" != 1 && -s "$kernel" && -s "$initrd" && "$initrd" -nt "$here/images/init.sh" ]]; then
  log "already built in $out"
  print_paths
  exit 0
fi

need_update=0
apt_ready() {
  if ((need_update == 0)); then
    need_update=1
    if ! apt-cache show busybox-static >/dev/null 2>&1 || [[ -n "${APT_UPDATE:-}" ]]; then
      apt-get update -q >&2
    fi
  fi
}

if ! command -v cpio >/dev/null; then
  apt_ready
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q cpio >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt-get download runs as _apt where it can

apt_ready
# --- kernel ----------------------------------------------------------------------------
if [[ "${FORCE:-0}" == 1 || ! -s "$kernel" ]]; then
  pkg=${KERNEL_PKG:-}
  if [[ -z "$pkg" ]]; then
    # the versioned package the cloud meta-package currently points at
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
          awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')
  fi
  if [[ -z "$pkg" ]]; then
    apt-get update -q >&2
    pkg=$(apt-cache depends linux-image-cloud-amd64 |
          awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')
  fi
  [[ -n "$pkg" ]] || { log "cannot find a linux-image-*-cloud-amd64 package"; exit 1; }
  log "downloading $pkg"
  (cd "$work" && apt-get download -q "$pkg" >&2)
  mkdir -p "$work/k"
  dpkg-deb -x "$work"/linux-image-*.deb "$work/k"
  src=$(ls "$work"/k/boot/vmlinuz-* | head -n1)
  cp "$src" "$kernel.tmp" && mv "$kernel.tmp" "$kernel"
  echo "$pkg" >"$out/kernel-package"
  log "kernel: $(basename "$src")"
fi

# --- initramfs -------------------------------------------------------------------------
log "downloading busybox-static"
(cd "$work" && apt-get download -q busybox-static >&2)
mkdir -p "$work/bb"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,root}
cp "$work/bb/bin/busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
# one symlink per applet (busybox is static x86-64 and runs on the build host)
while read -r applet; do
  case "$applet" in */busybox|"") continue ;; esac
  ln -sf /bin/busybox "$root/$applet" 2>/dev/null || true
done < <("$root/bin/busybox" --list-full)
install -m 755 "$here/images/init.sh" "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
if [[ $(id -u) -eq 0 ]]; then
  # the kernel opens /dev/console for init before /init can mount devtmpfs
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3
fi
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
  gzip -9 >"$initrd.tmp"
mv "$initrd.tmp" "$initrd"
log "initramfs: $(stat -c %s "$initrd") bytes"
print_paths
