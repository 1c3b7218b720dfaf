"""The units under real systemd 252: a Debian 12 container booted with systemd-nspawn.

One container for the module (tests/system/conftest.py); the tests run in file order and
each leaves the units as it found them. Marked ``system``: they need root, a Debian mirror on
first run (the root file system is then cached) and about a minute with a warm cache.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.system.conftest import Box

pytestmark = pytest.mark.system


def test_both_units_reach_ready_under_their_hardening(box: Box) -> None:
    c = box.container
    for unit in ("kiosk.service", "kiosk-sync.service"):
        props = c.wait_for(unit, 60, ActiveState="active", SubState="running")
        assert props, unit
    hw = c.show("kiosk.service", "MainPID", "StatusText", "User", "DevicePolicy", "Type",
                "NotifyAccess", "WatchdogUSec", "StateDirectory")  # fmt: skip
    assert hw["Type"] == "notify" and hw["User"] == "kiosk" and hw["DevicePolicy"] == "closed"
    assert hw["WatchdogUSec"] == "4s"  # the test drop-in
    # STATUS= mirrors the health probe, and says the hardware is simulated here.
    assert "SIMULATED" in c.wait_for_status("kiosk.service", "SIMULATED", 30)
    pid = hw["MainPID"]
    # the daemon really runs as the kiosk user, with no capabilities and no new privileges
    status = c.sh(["cat", f"/proc/{pid}/status"])
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uid = c.sh(["id", "-u", "kiosk"]).strip()
    assert fields["Uid"].split()[0] == uid
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    # ProtectSystem=strict: the daemon sees / read-only, its data directory writable
    mounts = {m.split()[1]: m.split()[3] for m in c.sh(["cat", f"/proc/{pid}/mounts"]).splitlines()}
    assert mounts["/"].startswith("ro"), mounts
    assert mounts["/var/lib/kiosk"].startswith("rw"), mounts
    # both daemons share the data directory, owned by the kiosk user
    owner = c.sh(["stat", "-c", "%U %a", "/var/lib/kiosk"]).split()
    assert owner == ["kiosk", "750"]


def _ordered_after(box: Box, unit: str) -> set[str]:
    """Every unit ``unit`` waits for at boot (its After= closure, recursively)."""
    out = box.container.sh(
        ["systemctl", "list-dependencies", "--after", "--all", "--plain", "--no-pager", unit]
    )
    return {line.strip() for line in out.splitlines()[1:] if line.strip()}


def test_no_network_on_the_kiosks_critical_path(box: Box) -> None:
    # The screen and check-ins must come up with the cable out: nothing kiosk.service or the
    # screen waits for at boot may wait for the network to be online. kiosk-sync does, and
    # that is its job (the check below that it does keeps this test able to fail).
    assert "network-online.target" in _ordered_after(box, "kiosk-sync.service")
    for unit in ("kiosk.service", "kiosk-ui.service"):
        waits_for = _ordered_after(box, unit)
        assert "kiosk-sync.service" not in waits_for, unit
        online = {u for u in waits_for if u.startswith("network-online")
                  or u.endswith("wait-online.service")}  # fmt: skip
        assert not online, f"{unit} waits for {online} at boot"
    # and what actually held kiosk.service up on this boot had nothing to do with a network
    chain = box.container.sh(["systemd-analyze", "critical-chain", "--no-pager", "kiosk.service"])
    assert "kiosk.service" in chain and "network" not in chain, chain


def test_journal_has_a_stable_identifier_and_structured_fields(box: Box) -> None:
    c = box.container
    c.wait_for("kiosk.service", 60, ActiveState="active")
    out = c.sh(["journalctl", "--no-pager", "-o", "verbose", "SYSLOG_IDENTIFIER=kiosk"])
    assert "kiosk ready" in out
    assert "_SYSTEMD_UNIT=kiosk.service" in out
    assert "LOGGER=" in out


def test_sync_unit_delivers_records_to_the_api_on_host_loopback(box: Box) -> None:
    box.container.wait_for("kiosk-sync.service", 60, ActiveState="active", SubState="running")
    store = box.api.storage()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and store.count(box.device.id) < 1:
            time.sleep(0.3)
        delivered = store.count(box.device.id)
    finally:
        store.close()
    assert delivered >= 1, box.container.journal("kiosk-sync.service")
    # the roster came down too, into the shared data directory
    box.container.wait_file("/var/lib/kiosk/roster.json", 30)


def test_a_hung_daemon_is_restarted_by_the_watchdog(box: Box) -> None:
    c = box.container
    before = c.wait_for("kiosk.service", 60, ActiveState="active", SubState="running")
    props = c.show("kiosk.service", "MainPID", "NRestarts")
    c.sh(["kill", "-STOP", props["MainPID"]])  # hung: alive, but no WATCHDOG=1
    deadline = time.monotonic() + 40
    after = props
    while time.monotonic() < deadline:
        after = c.show("kiosk.service", "MainPID", "NRestarts", "ActiveState", "SubState")
        if (int(after["NRestarts"]) > int(props["NRestarts"]) and after["SubState"] == "running"
                and after["MainPID"] not in ("0", props["MainPID"])):  # fmt: skip
            break
        time.sleep(0.3)
    journal = c.journal("kiosk.service")
    assert int(after["NRestarts"]) == int(props["NRestarts"]) + 1, (before, after, journal)
    assert after["MainPID"] != props["MainPID"]
    assert "Watchdog timeout" in journal
    # and it is READY again (Type=notify: "running" only after READY=1)
    c.wait_for("kiosk.service", 30, ActiveState="active", SubState="running")


def test_a_config_error_stops_the_restart_loop(box: Box) -> None:
    c = box.container
    c.sh(["systemctl", "start", "kiosk-badconfig.service"], check=False)
    props = c.wait_for("kiosk-badconfig.service", 30, ActiveState="failed")
    time.sleep(3)  # RestartSec=1s: a restart, had there been one, would show by now
    props = c.show("kiosk-badconfig.service", "ActiveState", "NRestarts", "ExecMainStatus",
                   "Result")  # fmt: skip
    assert props["ExecMainStatus"] == "78"
    assert props["NRestarts"] == "0"
    assert props["ActiveState"] == "failed"
    assert "no_such_key" in c.journal("kiosk-badconfig.service")


def _host_address() -> str | None:
    """The host's primary non-loopback IPv4 address (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def test_sync_unit_firewall_allows_loopback_only(box: Box) -> None:
    c = box.container
    cgroups = c.sh(["cat", "/proc/1/cgroup"]).split()
    if any(not line.startswith("0::") for line in cgroups):
        pytest.skip(
            "the container runs on cgroup v1 (hybrid host): systemd cannot attach the BPF "
            "programs behind IPAddressDeny=, so the allow-list cannot be enforced here"
        )
    host = _host_address()
    if host is None:
        pytest.skip("the host has no non-loopback IPv4 address to probe")
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        for target, want in ((f"127.0.0.1:{port}", "success"), (f"{host}:{port}", "failed")):
            unit = f"kiosk-netprobe@{target}.service"
            c.sh(["systemctl", "start", unit], check=False)
            props = c.show(unit, "Result", "ActiveState")
            assert (props["ActiveState"] == "inactive") == (want == "success"), (target, props)


def test_the_health_report_is_in_run_and_the_self_test_reads_it(box: Box) -> None:
    """Under real systemd: kiosk.service writes /run/kiosk/health.json (RuntimeDirectory=,
    tmpfs), readable by root's `kioskctl selftest`, which passes the parts this container has
    and fails, with a fix, the screen and kiosk-ui.service (installed and enabled, but this
    container has no tty1, cage or browser).
    The boot check and data-growing units are installed but skip themselves: no A/B card in
    this container."""
    c = box.container
    c.wait_for("kiosk.service", 60, ActiveState="active", SubState="running")
    deadline = time.monotonic() + 30  # /run is the container's own tmpfs: ask inside it
    while "yes" not in c.sh(
        ["sh", "-c", "grep -qs 'camera_probe\": \"' /run/kiosk/health.json && echo yes"],
        check=False,
    ):
        assert time.monotonic() < deadline, c.journal("kiosk.service")
        time.sleep(0.3)
    assert c.sh(["stat", "-c", "%U %a", "/run/kiosk/health.json"]).split() == ["kiosk", "640"]
    assert c.sh(["stat", "-c", "%U %a", "/run/kiosk"]).split() == ["kiosk", "750"]
    out = c.sh(["/opt/kiosk/bin/kioskctl", "selftest", "--json"], check=False)
    doc = json.loads(out)
    rows = {r["name"]: r["status"] for r in doc["checks"]}
    assert doc["ok"] is False
    assert rows["health report"] == "pass", doc
    assert rows["outbox"] == rows["fingerprint"] == "pass", rows
    assert rows["camera"] == "pass", rows
    assert rows["screen"] == "fail", rows
    assert rows["services"] == "fail"  # kiosk-ui.service cannot run here: no tty1, no cage
    ui = c.show("kiosk-ui.service", "UnitFileState", "LoadState")
    assert ui == {"UnitFileState": "enabled", "LoadState": "loaded"}, ui
    # what it would run on a kiosk is there: the shell starts as far as its arguments
    assert "--url-file" in c.sh(["/opt/kiosk/bin/python", "-m", "daemon.ui.shell", "--help"])
    check = c.show("kiosk-boot-check.service", "UnitFileState", "ConditionResult", "ActiveState")
    assert check["UnitFileState"] == "enabled" and check["ConditionResult"] == "no", check
    # the first-boot growth of the data partition is enabled, and without the kiosk's card
    # (no rauc.slot on the kernel command line) it stands aside instead of holding the boot
    grow = c.show("kiosk-grow-data.service", "UnitFileState", "ConditionResult", "ActiveState")
    assert grow["UnitFileState"] == "enabled" and grow["ConditionResult"] == "no", grow


def test_the_installed_kiosk_speaks_its_screens_in_both_languages(box: Box) -> None:
    """install-kiosk.sh made the spoken prompts with the root file system's espeak-ng, and
    kiosk.service serves them on its local UI: each screen's, and the words of the cover the
    page shows (and speaks) when it cannot reach the daemon. Without them every Listen
    button on a real kiosk would be silent."""
    c = box.container
    c.wait_for("kiosk.service", 60, ActiveState="active", SubState="running")
    c.wait_file("/var/lib/kiosk/ui-url", 30)
    fetch = (
        "import sys, urllib.request; url = open('/var/lib/kiosk/ui-url').read().strip()\n"
        "for name in sys.argv[1:]:\n"
        "    body = urllib.request.urlopen(url + 'audio/' + name, timeout=5).read()\n"
        "    print(name, body[:4].decode(), body[8:12].decode(), len(body))\n"
    )
    names = [f"{lang}/{screen}.wav" for lang in ("cy", "en") for screen in ("identify", "lost")]
    rows = [line.split() for line in c.sh(["python3", "-c", fetch, *names]).splitlines()]
    assert [r[0] for r in rows] == names
    for name, riff, wave, size in rows:
        assert (riff, wave) == ("RIFF", "WAVE") and int(size) > 20_000, name  # seconds of speech
    made = c.sh(["stat", "-c", "%U %a", "/opt/kiosk/share/probation-kiosk/audio/cy/lost.wav"])
    assert made.split() == ["root", "644"]  # part of the software: read-only to the kiosk


def test_the_boot_check_unit_acts_under_its_own_hardening(box: Box) -> None:
    """kiosk-boot-check.service under real systemd, on an A/B card whose last update died in
    its trial boot: the unit runs as shipped (only its wait is shortened and the firmware's
    device-tree node pointed at a folder), reads the slots, records the failed trial in
    autoboot.txt, and — the self-test failing here (no browser), on the only working slot —
    exits 1 without rebooting."""
    from daemon.bootslots import Autoboot

    c, root = box.container, box.root
    c.wait_for("kiosk.service", 60, ActiveState="active", SubState="running")
    autoboot = root / "boot" / "autoboot" / "autoboot.txt"
    autoboot.parent.mkdir(parents=True, exist_ok=True)
    autoboot.write_text(Autoboot(committed=2, trial=3, trying="B").render())
    dt = root / "etc" / "fake-devicetree"
    dt.mkdir(exist_ok=True)
    (dt / "partition").write_bytes((2).to_bytes(4, "big"))  # the firmware fell back to A
    (dt / "tryboot").write_bytes((0).to_bytes(4, "big"))
    dropin = root / "etc" / "systemd" / "system" / "kiosk-boot-check.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "test.conf").write_text(
        "[Service]\nEnvironment=KIOSK_DEVICETREE=/etc/fake-devicetree\nExecStart=\n"
        "ExecStart=/opt/kiosk/bin/kioskctl selftest --wait 3 --commit\n"
    )
    try:
        c.sh(["systemctl", "daemon-reload"])
        c.sh(["systemctl", "start", "kiosk-boot-check.service"], check=False, timeout_s=60)
        props = c.show("kiosk-boot-check.service", "ActiveState", "Result", "ExecMainStatus")
        assert props == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "1"}
        log = c.journal("kiosk-boot-check.service")
        assert "never passed its trial boot" in log and "slot B is marked bad" in log, log
        assert "self-test FAILED on slot A, the only working system" in log, log
        assert Autoboot.parse(autoboot.read_text()) == Autoboot(2, 2, frozenset({"B"}), None)
        assert c.sh(["systemctl", "is-system-running"], check=False).strip() != "stopping"
    finally:
        c.sh(["systemctl", "reset-failed", "kiosk-boot-check.service"], check=False)
        for p in (dropin / "test.conf", autoboot, dt / "partition", dt / "tryboot"):
            p.unlink(missing_ok=True)
        c.sh(["systemctl", "daemon-reload"], check=False)
