"""The persistent journal on the data partition, under real systemd 252 (journald, the fstab
bind, systemd-journal-flush) and across restarts, as docs/systemd.md ("Logging") describes.

The first tests read the shipped files: the journald caps against the outbox's reserve. The
rest boot a Debian 12 container (tests/system/nspawn.py) four times over one overlay and one
``/data``, a 384 MiB tmpfs standing in for the data partition, with the image's own fstab line
for the journal and the shipped journald and mount drop-ins:

1. the kiosk runs; journald moves from /run to /data; a unique line is logged; power-off;
2. the same root: the first boot is ``journalctl -b -1`` and is in ``kioskctl bundle``'s
   ``logs/previous-boot.txt``; another unique line; then the container is killed (every
   process at once, no unit stopped: what a watchdog reset does to userspace);
3. a root with another machine ID (as the other slot's root may have): the killed boot is
   found on /data under its own ID, and the bundle lists it;
4. a read-only root with no machine ID (PID 1 makes one up for the boot): the journal stays in
   /run, and /data gains no folder.

What a container cannot show: a real power cut. Killing every process leaves the kernel's
page cache alone, so this proves where journald writes and that it finds its files again, not
what an SD card keeps when the power goes (journald syncs every 5 minutes and at once for
critical messages; ext4 on /data commits every 5 s).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon.config import OutboxConfig
from daemon.demo_support import provision, publish_roster
from firmware.image import FSTAB
from hil.refapi.server import RefApi
from tests.system import nspawn
from tests.system.conftest import _install_config, prepared

UNITS = Path(__file__).resolve().parents[2] / "systemd"
DROPIN = UNITS / "journald.conf.d" / "kiosk-journal.conf"
MIB = 1024 * 1024
DATA_MIB = 384
#: journald's "System Journal (...) is 8.0M, max 64.0M, 56.0M free." (sd-messages.h)
USAGE_MESSAGE_ID = "ec387f577b844b8fa948f33cad9a75e6"


def _journald_settings() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in DROPIN.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _bytes(size: str) -> int:
    """journald.conf sizes: a number with K, M, G or T (powers of 1024)."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", size)
    assert match, size
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2) or " "))


def test_the_journal_is_persistent_and_capped() -> None:
    conf = _journald_settings()
    assert conf["Storage"] == "persistent"  # not "auto": no silent fall back to /run
    assert 0 < _bytes(conf["SystemMaxUse"]) <= 256 * MIB
    assert _bytes(conf["SystemMaxFileSize"]) * 4 <= _bytes(conf["SystemMaxUse"])  # rotates


def test_the_journal_stops_before_check_ins_lose_their_photo() -> None:
    """journald writes nothing below SystemKeepFree; check-ins are saved without their photo
    below no_photo_free_mb, and refused below min_free_mb. Logs must stop first."""
    keep_free = _bytes(_journald_settings()["SystemKeepFree"])
    levels = OutboxConfig()
    assert keep_free > levels.no_photo_mb * MIB > levels.min_free_mb * MIB


def test_the_image_binds_the_journal_to_the_data_partition_without_risking_the_boot() -> None:
    line = _fstab_journal_line()
    source, target, kind, options = line.split()[:4]
    assert (source, target, kind) == ("/data/journal", "/var/log/journal", "none")
    opts = options.split(",")
    assert "bind" in opts and "x-systemd.requires=/data" in opts
    assert "nofail" in opts  # a missing /data/journal leaves a volatile journal, not a rescue shell
    tmpfiles = (UNITS / "tmpfiles.d" / "kiosk.conf").read_text()
    assert re.search(r"(?m)^d /data/journal 2755 root systemd-journal -$", tmpfiles)


def _fstab_journal_line() -> str:
    return next(line for line in FSTAB.splitlines() if " /var/log/journal " in line)


@dataclass
class Boot:
    """What one boot of the container showed."""

    machine_id: str
    boot_id: str  # as journalctl prints it: 32 hex digits
    marker: str = ""
    usage: dict[str, str] = field(default_factory=dict)
    journal_mount: str = ""
    local_previous: tuple[int, str] = (0, "")
    bundle: dict[str, str] = field(default_factory=dict)


@dataclass
class History:
    boots: list[Boot]
    data: Path
    files_after: list[list[str]]  # the journal files on /data after each boot
    transient: dict[str, str]  # boot 4: the journal mount and what journald used


def _sh(c: nspawn.Container, *args: str, check: bool = True) -> str:
    return c.sh(list(args), check=check, timeout_s=120)


def _boot(root: Path, work: Path, n: int, extra: list[str]) -> nspawn.Container:
    c = nspawn.Container(root, work / f"console-{n}.log", machine="kiosk-journal", extra=extra)
    try:
        c.wait_booted()
    except RuntimeError as exc:
        c.stop()
        if "Operation not permitted" in c.log.read_text():
            pytest.skip(f"systemd-nspawn cannot run here: {exc}")
        raise
    return c


def _usage(c: nspawn.Container, name: str) -> dict[str, str]:
    """journald's last report of this boot on the journal called ``name``, as fields."""
    out = _sh(c, "journalctl", "-b", "0", "-o", "json", f"MESSAGE_ID={USAGE_MESSAGE_ID}",
              f"JOURNAL_NAME={name}")  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {k: str(v) for k, v in lines[-1].items()} if lines else {}


def _observe(c: nspawn.Container, n: int, *, bundle: bool) -> Boot:
    boot = Boot(
        machine_id=_sh(c, "cat", "/etc/machine-id").strip(),
        boot_id=_sh(c, "cat", "/proc/sys/kernel/random/boot_id").strip().replace("-", ""),
        marker=f"journal-test-boot-{n}-{uuid.uuid4().hex}",
    )
    c.wait_for("systemd-journal-flush.service", 60, ActiveState="active")
    c.wait_for("kiosk.service", 60, ActiveState="active", SubState="running")
    boot.journal_mount = _sh(c, "findmnt", "-n", "-o", "SOURCE,FSTYPE", "/var/log/journal")
    boot.usage = _usage(c, "System Journal")
    done = subprocess.run(
        ["nsenter", "-t", str(c.leader), "-a", "journalctl", "--no-pager", "-b", "-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    boot.local_previous = (done.returncode, done.stdout)
    if bundle:
        _sh(c, "/opt/kiosk/bin/kioskctl", "--config", "/etc/kiosk/kiosk.toml", "bundle",
            "--out", "/root/bundle.tar.gz")  # fmt: skip
        archive = c.root / "root" / "bundle.tar.gz"
        with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode="r:gz") as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m)
                if f is not None:
                    boot.bundle[m.name.split("/", 1)[1]] = f.read().decode()
        archive.unlink()
    # PID 1 logs "Started <description>." for this unit: a line only this boot has
    _sh(c, "systemd-run", "--quiet", "--wait", f"--description={boot.marker}", "true")
    _sh(c, "journalctl", "--sync")
    return boot


def _journal_files(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in (data / "journal").rglob("*.journal*"))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    work, wheel_dir, lower = prepared(tmp_path_factory, "journal")
    data = work / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_MIB}M,mode=0755", "tmpfs",
                    str(data)], check=True, timeout=30)  # fmt: skip
    api = RefApi(work / "api")
    api.start()
    try:
        device = provision(api, work / "kiosk", "kiosk-journal-01")
        publish_roster(api, device)
        (data / "journal").mkdir()  # as the image makes it (tests/firmware/test_image.py)
        with nspawn.overlay(lower, work / "overlay") as root:
            nspawn.install(root, wheel_dir)
            _install_config(root, device, api)
            (root / "etc" / "fstab").write_text(_fstab_journal_line() + "\n")
            extra = [f"--bind={data}:/data", "--link-journal=no"]
            boots: list[Boot] = []
            files: list[list[str]] = []
            for n, (how, more) in enumerate(
                [("stop", []), ("kill", []), ("stop", [f"--uuid={uuid.uuid4()}"])], start=1
            ):
                if more:  # another root: the same /data, another machine ID
                    (root / "etc" / "machine-id").write_text("")
                c = _boot(root, work, n, [*extra, *more])
                try:
                    boots.append(_observe(c, n, bundle=n > 1))
                finally:
                    if how == "kill":
                        c.kill()
                    else:
                        c.stop()
                files.append(_journal_files(data))
            # a read-only root without a machine ID: PID 1 mounts one made up for this boot
            (root / "etc" / "machine-id").write_text("")
            c = _boot(root, work, 4, [*extra, "--read-only", f"--uuid={uuid.uuid4()}"])
            try:
                transient = {
                    "machine_id_mount": _sh(c, "findmnt", "-n", "-o", "TARGET",
                                            "/etc/machine-id", check=False).strip(),
                    "journal_mount": _sh(c, "findmnt", "-n", "/var/log/journal",
                                         check=False).strip(),
                    "condition": c.show("var-log-journal.mount", "ConditionResult")
                    .get("ConditionResult", ""),
                    "runtime": _usage(c, "Runtime Journal").get("JOURNAL_PATH", ""),
                    "system": _usage(c, "System Journal").get("JOURNAL_PATH", ""),
                }  # fmt: skip
            finally:
                c.stop()
            files.append(_journal_files(data))
            yield History(boots, data, files, transient)
    finally:
        api.stop()
        subprocess.run(["umount", "-l", str(data)], check=False, timeout=30)


@pytest.mark.system
def test_journald_writes_to_the_data_partition_within_its_caps(history: History) -> None:
    first = history.boots[0]
    assert first.journal_mount.split()[1] == "tmpfs", first.journal_mount  # /data's, bound
    usage = first.usage
    assert usage, "journald never reported a system journal"
    assert usage["JOURNAL_PATH"] == f"/var/log/journal/{first.machine_id}"
    conf = _journald_settings()
    keep_free = _bytes(conf["SystemKeepFree"])
    assert int(usage["MAX_USE"]) == _bytes(conf["SystemMaxUse"])
    assert int(usage["DISK_KEEP_FREE"]) == keep_free
    # journald measures the file system it writes to: on this 384 MiB /data the keep-free
    # line, not SystemMaxUse, is the ceiling (the container's own root has gigabytes free)
    assert int(usage["LIMIT"]) == DATA_MIB * MIB - keep_free, usage
    assert history.files_after[0] == [f"journal/{first.machine_id}/system.journal"]


@pytest.mark.system
def test_the_previous_boot_survives_a_restart_and_is_in_the_bundle(history: History) -> None:
    first, second = history.boots[0], history.boots[1]
    assert second.machine_id == first.machine_id
    code, previous = second.local_previous
    assert code == 0 and first.marker in previous, previous[-2000:]
    assert second.marker not in previous
    log = second.bundle["logs/previous-boot.txt"]
    assert first.marker in log  # PID 1's own line
    assert "kiosk ready" in log  # kiosk.service's, from that boot
    assert second.marker not in log


@pytest.mark.system
def test_a_killed_boot_is_kept_and_listed_under_another_machine_id(history: History) -> None:
    """The killed second boot's files are still read (journald finds them unclean and moves
    on). Under the third root's machine ID journalctl sees no earlier boot: the bundle says
    so and lists the boots on /data by ID, the killed one among them."""
    second, third = history.boots[1], history.boots[2]
    assert third.machine_id != second.machine_id
    assert {f.split("/")[1] for f in history.files_after[2]} == {
        second.machine_id, third.machine_id
    }  # fmt: skip
    code, _ = third.local_previous
    assert code != 0  # journalctl -b -1 alone: "no such boot"
    log = third.bundle["logs/previous-boot.txt"]
    assert "no earlier boot under this machine ID" in log
    assert second.boot_id in log and history.boots[0].boot_id in log, log
    found = subprocess.run(
        ["journalctl", "--no-pager", "-D", str(history.data / "journal"), "-b", second.boot_id],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.marker in found.stdout  # what the bundle tells the engineer to run


@pytest.mark.system
def test_a_machine_id_made_up_for_one_boot_keeps_the_journal_in_run(history: History) -> None:
    t = history.transient
    assert t["machine_id_mount"] == "/etc/machine-id", t  # PID 1's transient ID
    assert t["condition"] == "no" and t["journal_mount"] == "", t
    assert t["runtime"].startswith("/run/log/journal/") and t["system"] == "", t
    assert history.files_after[3] == history.files_after[2]  # /data gained nothing
