#!/bin/sh
# Build the Debian 12 (bookworm) root file system the system tests boot with systemd-nspawn.
#
#   firmware/rootfs/build-rootfs.sh OUTDIR [MIRROR]
#
# minbase + systemd + python3 + python3-venv: the same systemd (252) and Python (3.11) as
# Raspberry Pi OS Bookworm; espeak-ng, which install-kiosk.sh needs to make the spoken prompts. Needs root and mmdebstrap (firmware/rootfs/ensure-host-tools.sh).
# Builds into OUTDIR.tmp and renames on success, so a broken build never looks cached.
# Takes about a minute with a reachable mirror; the tests cache the result keyed by a hash
# of this file (tests/system/rootfs.py).
set -eu
out=${1:?usage: build-rootfs.sh OUTDIR [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$out")"
mmdebstrap --mode=root --variant=minbase --format=directory --quiet \
    --include=systemd,systemd-sysv,dbus,python3,python3-venv,procps,espeak-ng \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='echo kiosk-test > "$1/etc/hostname"' \
    --customize-hook=': > "$1/etc/machine-id"' \
    --customize-hook='chroot "$1" systemctl set-default multi-user.target' \
    --customize-hook='chroot "$1" systemctl mask getty@.service console-getty.service systemd-logind.service apt-daily.timer apt-daily-upgrade.timer' \
    --customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
    bookworm "$tmp" "$mirror"
rm -rf "$out"
mv "$tmp" "$out"
