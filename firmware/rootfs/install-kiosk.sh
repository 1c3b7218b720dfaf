#!/bin/sh
# Install the kiosk into a root file system (a Debian 12 tree from build-rootfs.sh).
#
#   firmware/rootfs/install-kiosk.sh ROOTFS WHEELDIR [--no-deps]
#
# WHEELDIR holds a wheel of the checkout plus wheels of its dependencies
# (`pip wheel -w WHEELDIR .` on a host with the same CPU architecture and Python 3.11).
# Inside ROOTFS (run through systemd-nspawn, not booted): a venv at /opt/kiosk with the
# kiosk installed offline from WHEELDIR (it sees the system's site-packages: on a Pi,
# picamera2 and lgpio come from Raspberry Pi OS packages, docs/drivers.md); the units,
# sysusers.d, tmpfiles.d, the PID 1 watchdog setting, the journald caps and the journal
# mount's condition from systemd/; the kiosk users created; the units enabled, the
# touchscreen's (kiosk-ui.service) included; the spoken prompts, English and Welsh, made by
# espeak-ng into /opt/kiosk/share/probation-kiosk/audio (daemon/ui/audio.py), so the Listen
# buttons speak with the words of the software installed (an update makes its own).
# ROOTFS must have espeak-ng (Raspberry Pi OS: apt install espeak-ng); without it the
# install fails: a kiosk whose Listen buttons are silent fails people who cannot read.
# --no-deps reinstalls only the project wheel (the dependencies are already in the venv).
# Needs root and systemd-nspawn.
set -eu
root=${1:?usage: install-kiosk.sh ROOTFS WHEELDIR [--no-deps]}
wheels=${2:?usage: install-kiosk.sh ROOTFS WHEELDIR [--no-deps]}
mode=${3:-}
src=$(cd "$(dirname "$0")/../.." && pwd)
root=$(cd "$root" && pwd)
wheels=$(cd "$wheels" && pwd)

install -d "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/etc/systemd/system.conf.d" "$root/etc/systemd/journald.conf.d" \
    "$root/usr/lib/systemd/system/var-log-journal.mount.d" "$root/opt/kiosk/share/doc"
install -m 0644 "$src/systemd/kiosk.service" "$src/systemd/kiosk-sync.service" \
    "$src/systemd/kiosk-boot-check.service" "$src/systemd/kiosk-grow-data.service" \
    "$src/systemd/kiosk-ui.service" "$root/usr/lib/systemd/system/"
install -m 0644 "$src/systemd/sysusers.d/kiosk.conf" "$root/usr/lib/sysusers.d/kiosk.conf"
install -m 0644 "$src/systemd/tmpfiles.d/kiosk.conf" "$root/usr/lib/tmpfiles.d/kiosk.conf"
install -m 0644 "$src/systemd/system.conf.d/kiosk-watchdog.conf" "$root/etc/systemd/system.conf.d/"
install -m 0644 "$src/systemd/journald.conf.d/kiosk-journal.conf" \
    "$root/etc/systemd/journald.conf.d/"
install -m 0644 "$src/systemd/var-log-journal.mount.d/kiosk-machine-id.conf" \
    "$root/usr/lib/systemd/system/var-log-journal.mount.d/"
install -m 0644 "$src/docs/systemd.md" "$root/opt/kiosk/share/doc/systemd.md" 2>/dev/null || true
install -m 0644 "$src/docs/updates.md" "$root/opt/kiosk/share/doc/updates.md" 2>/dev/null || true
install -m 0644 "$src/docs/ui.md" "$root/opt/kiosk/share/doc/ui.md" 2>/dev/null || true

if [ "$mode" = "--no-deps" ]; then
    pipargs="--no-deps --force-reinstall"
else
    pipargs=""
fi
systemd-nspawn --quiet --register=no --keep-unit --pipe -D "$root" \
    --bind-ro="$wheels:/wheels" /bin/sh -eu -c "
        [ -x /opt/kiosk/bin/python ] || python3 -m venv --system-site-packages /opt/kiosk
        /opt/kiosk/bin/pip install --quiet --no-index --find-links /wheels \
            --disable-pip-version-check $pipargs probation-kiosk
        /opt/kiosk/bin/python -m daemon.ui.audio --out /opt/kiosk/share/probation-kiosk/audio
        systemd-sysusers
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/kiosk.conf
        systemctl enable --quiet kiosk.service kiosk-sync.service kiosk-boot-check.service \
            kiosk-grow-data.service kiosk-ui.service
    " 2>&1 | grep -v 'Attempted to remove disk file system' >&2 || true
[ -x "$root/opt/kiosk/bin/kiosk" ] || { echo "install-kiosk: /opt/kiosk/bin/kiosk missing" >&2; exit 1; }
for lang in en cy; do
    [ -s "$root/opt/kiosk/share/probation-kiosk/audio/$lang/lost.wav" ] || {
        echo "install-kiosk: the spoken prompts were not made; install espeak-ng in the root" \
            "file system (apt install espeak-ng) and run this again" >&2
        exit 1
    }
done
