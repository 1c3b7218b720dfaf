#!/bin/sh
# Install the host tools the system tests need (mmdebstrap, systemd-nspawn) when missing.
# Idempotent; a no-op when they are present. Needs root and apt (Debian/Ubuntu hosts).
# Exit status: 0 tools present (or installed); 2 not root; 3 no apt-get; 4 install failed.
set -eu
missing=""
command -v mmdebstrap >/dev/null 2>&1 || missing="$missing mmdebstrap"
command -v systemd-nspawn >/dev/null 2>&1 || missing="$missing systemd-container"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "ensure-host-tools: need root to install:$missing" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-host-tools: no apt-get; install$missing by hand" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >&2; then
    echo "ensure-host-tools: apt-get install$missing failed" >&2
    exit 4
fi
