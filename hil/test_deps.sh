#!/bin/sh
# Install the Debian 12 packages the tests and audio generation need, when missing.
#
#   chromium       the browser Playwright drives headless (never `playwright install`)
#   espeak-ng      offline text-to-speech with en-gb and cy voices (audio prompts)
#   fonts-dejavu-core  a local font with Welsh diacritics (ŵ, ŷ) for screenshots
#   softhsm2       a software PKCS#11 token, standing in for the device's hardware key
#   rauc, squashfs-tools, dbus-daemon  real RAUC installing signed bundles (tests/updates)
#   fdisk, dosfstools, mtools, bmap-tools  building the SD-card image and flashing it
#   postgresql-15  the reference API's PostgreSQL backend (a throwaway server per test run)
#                  (tests/firmware; e2fsprogs is always there)
#
# Runs only as root (CI is a fresh Debian 12 machine as root); as another user it lists what is
# missing and exits 1 so the caller knows the tests cannot run. Idempotent: installs nothing
# when everything is present. The Python side (playwright) is a pip dev dependency, not here.
set -eu

PACKAGES="chromium espeak-ng fonts-dejavu-core softhsm2 rauc squashfs-tools dbus-daemon fdisk dosfstools mtools bmap-tools postgresql-15"
missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "test_deps: all present ($PACKAGES)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "test_deps: missing Debian packages:$missing" >&2
    echo "test_deps: run as root: apt-get install --no-install-recommends$missing" >&2
    exit 1
fi

echo "test_deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
echo "test_deps: done"
