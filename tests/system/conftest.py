"""One booted Debian 12 container for the whole module of boot tests (see nspawn.py).

The reference API runs on the host's 127.0.0.1; the kiosk is provisioned against it on the
host (keys, enrolment) and its config and keys are copied into the container's
/etc/kiosk and /var/lib/kiosk. The container is powered off and unmounted afterwards.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.demo_support import DemoDevice, provision, publish_roster
from hil.refapi.server import RefApi, free_loopback_port
from tests.system import nspawn

# Per-test drop-ins: a short watchdog so a hung daemon is caught in seconds, and a copy of the
# sync unit pointed at a broken config (to see RestartPreventExitStatus=78 stop the loop).
WATCHDOG_DROPIN = """[Service]
WatchdogSec=4s
TimeoutAbortSec=2s
RestartSec=1s
"""


@dataclass
class Box:
    container: nspawn.Container
    api: RefApi
    device: DemoDevice
    root: Path


def _kiosk_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "kiosk":
            return int(fields[2]), int(fields[3])
    raise AssertionError("no kiosk user in the rootfs (sysusers.d not applied)")


def _install_config(root: Path, device: DemoDevice, api: RefApi) -> None:
    etc = root / "etc" / "kiosk"
    etc.mkdir(exist_ok=True)
    text = device.config_path.read_text()
    text = re.sub(r'(?m)^data_dir = ".*"$', 'data_dir = "/var/lib/kiosk"', text)
    text = re.sub(r'(?m)^ca_bundle = ".*"$', 'ca_bundle = "/etc/kiosk/api-ca.pem"', text)
    text += f"\n[ui]\nport = {free_loopback_port()}\n"
    (etc / "kiosk.toml").write_text(text)
    (etc / "bad.toml").write_text(text.replace("[device]", "[device]\nno_such_key = 1", 1))
    shutil.copy(device.folder / "api-ca.pem", etc / "api-ca.pem")
    uid, gid = _kiosk_ids(root)
    for f in etc.iterdir():
        f.chmod(0o640)
        shutil.chown(f, 0, gid)
    state = root / "var" / "lib" / "kiosk"
    state.mkdir(parents=True, exist_ok=True)
    for f in device.data_dir.iterdir():
        shutil.copy2(f, state / f.name)
        (state / f.name).chmod(0o600)
    for p in (state, *state.iterdir()):
        shutil.chown(p, uid, gid)


def _install_dropins(root: Path) -> None:
    units = root / "etc" / "systemd" / "system"
    (units / "kiosk.service.d").mkdir(parents=True, exist_ok=True)
    (units / "kiosk.service.d" / "test.conf").write_text(WATCHDOG_DROPIN)
    sync = (root / "usr" / "lib" / "systemd" / "system" / "kiosk-sync.service").read_text()
    bad = sync.replace("/etc/kiosk/kiosk.toml", "/etc/kiosk/bad.toml")
    bad = re.sub(r"(?m)^RestartSec=.*$", "RestartSec=1s", bad)
    bad = bad.replace("[Install]\nWantedBy=multi-user.target\n", "")
    (units / "kiosk-badconfig.service").write_text(bad)
    # The sync unit's sandbox, with a one-shot TCP connect to %i (HOST:PORT) as its program.
    probe = re.sub(r"(?m)^(Type|NotifyAccess|WatchdogSec|Restart|RestartSec)=.*$", "", sync)
    probe = re.sub(
        r"(?m)^ExecStart=.*$",
        'Type=oneshot\nExecStart=/opt/kiosk/bin/python -c "import socket, sys; '
        "h, p = sys.argv[1].rsplit(':', 1); socket.create_connection((h, int(p)), timeout=3)\" %i",
        probe,
    )
    probe = probe.replace("[Install]\nWantedBy=multi-user.target\n", "")
    (units / "kiosk-netprobe@.service").write_text(probe)


def prepared(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path, Path]:
    """(a work folder, the checkout's wheels, the rootfs with its dependencies) for a system
    test; skips, saying why, where systemd-nspawn cannot run."""
    try:
        nspawn.host_tools()
    except nspawn.SystemTestUnavailable as exc:
        pytest.skip(str(exc))
    work = tmp_path_factory.mktemp(name)
    wheel_dir = nspawn.wheels(work / "wheels")
    return work, wheel_dir, nspawn.deps_rootfs(wheel_dir)


@pytest.fixture(scope="session")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    work, wheel_dir, lower = prepared(tmp_path_factory, "systemd")
    api = RefApi(work / "api")
    api.start()
    try:
        device = provision(api, work / "kiosk", "kiosk-systest-01")
        publish_roster(api, device)  # synthetic people, as the back office would
        with nspawn.overlay(lower, work / "overlay") as root:
            nspawn.install(root, wheel_dir)
            _install_config(root, device, api)
            _install_dropins(root)
            container = nspawn.Container(root, work / "console.log")
            try:
                try:
                    container.wait_booted()
                except RuntimeError as exc:
                    if "Operation not permitted" in container.log.read_text():
                        pytest.skip(f"systemd-nspawn cannot run here: {exc}")
                    raise
                yield Box(container, api, device, root)
            finally:
                container.stop()
    finally:
        api.stop()
