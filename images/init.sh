#!/bin/sh
# /init of drover's default guest image (busybox-static initramfs, direct kernel boot).
# Mounts the pseudo file systems, prints the ready marker on the serial console and
# stays up. Everything goes to /dev/console (= ttyS0 with console=ttyS0).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
exec </dev/null >/dev/console 2>&1
hostname drover-guest
marker=DROVER-GUEST-READY
poweroff_after=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    drover.marker=*) marker="${arg#drover.marker=}" ;;
    drover.poweroff_after=*) poweroff_after="${arg#drover.poweroff_after=}" ;;
  esac
done
read -r up _ </proc/uptime
echo "drover guest: kernel $(uname -r), uptime ${up}s, $(grep -c ^processor /proc/cpuinfo) cpu(s)"
echo "$marker"
if [ -n "$poweroff_after" ]; then
  # tests: the guest shuts itself down (a stop that drover did not ask for)
  sleep "$poweroff_after"
  echo "drover guest: powering off"
  poweroff -f
fi
# Stay up (PID 1 must never exit). A file-backed serial console has no input, so no shell.
while :; do
  sleep 3600
done
