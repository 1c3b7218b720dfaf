"""The SD-card image (firmware/image.py) and writing it to a card (kioskctl flash).

Built from a small synthetic root file system and boot folder (the real inputs are the
Raspberry Pi OS release and its boot files, gigabytes the tests do not download), then read
back with the same tools a person would use: sfdisk for the table, mtools for the FAT
partitions, debugfs for ext4. The firmware's choice of slot is the model in
tests/updates/card.py, fed the image's own autoboot.txt.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.bootslots import Autoboot
from daemon.kioskctl.__main__ import main as kioskctl
from daemon.kioskctl.flash import FlashRefused, check_target
from firmware.image import TOOLS, ImageError, build, read_partitions
from tests.firmware.conftest import DISK_ID, SHIPPED, SMALL
from tests.updates.card import Card

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs fdisk, dosfstools, mtools, e2fsprogs and bmap-tools "
    "(hil/test_deps.sh installs them)",
)


def _fat(image: Path, number: int, name: str) -> str:
    part = read_partitions(image)[number]
    return subprocess.run(
        ["mtype", "-i", f"{image}@@{part.start}", f"::/{name}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip


def _partition(image: Path, number: int, tmp: Path) -> Path:
    """Ext4 partition ``number`` of ``image``, copied out to a file debugfs can read."""
    part = read_partitions(image)[number]
    fs = tmp / f"p{number}.ext4"
    with image.open("rb") as src, fs.open("wb") as dst:
        src.seek(part.start)
        dst.write(src.read(part.size))
    return fs


def _ext4(image: Path, number: int, tmp: Path, *paths: str) -> dict[str, str]:
    fs = _partition(image, number, tmp)
    out = {}
    for p in paths:
        done = subprocess.run(["debugfs", "-R", f"cat {p}", str(fs)],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        out[p] = done.stdout
    return out


def _dirs(image: Path, number: int, tmp: Path, *paths: str) -> dict[str, bool]:
    """Which of ``paths`` are directories in ext4 partition ``number`` (debugfs stat)."""
    fs = _partition(image, number, tmp)
    found = {}
    for p in paths:
        done = subprocess.run(["debugfs", "-R", f"stat {p}", str(fs)],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        found[p] = "Type: directory" in done.stdout
    return found


def test_the_card_has_the_a_b_layout_of_the_update_design(image: Path) -> None:
    dump = subprocess.run(["sfdisk", "--dump", str(image)], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert f"label-id: 0x{DISK_ID}" in dump
    types = {int(line.split(":")[0].rsplit("img", 1)[1]): line.rsplit("type=", 1)[1]
             for line in dump.splitlines() if "type=" in line}  # fmt: skip
    assert types == {1: "c", 2: "c", 3: "c", 4: "5", 5: "83", 6: "83", 7: "83"}
    parts = read_partitions(image)
    assert parts[5].size == parts[6].size == SMALL.root_mib * 1024 * 1024
    assert all(p.start % (1024 * 1024) == 0 for n, p in parts.items() if n != 4)  # aligned


def test_a_new_card_boots_slot_a_with_its_own_root_and_b_is_a_ready_fallback(
    image: Path, tmp_path: Path
) -> None:
    autoboot = _fat(image, 1, "autoboot.txt")
    assert Autoboot.parse(autoboot) == Autoboot(committed=2, trial=2)
    assert autoboot == (SHIPPED / "boot" / "autoboot.txt").read_text()
    card = Card(tmp_path)
    card.autoboot.write_text(autoboot)
    booted = card.power_on()
    cmdline = _fat(image, booted, "cmdline.txt")
    assert f"root=PARTUUID={DISK_ID}-05" in cmdline and "rauc.slot=A" in cmdline
    assert " ro " in cmdline and "console=serial0" not in cmdline  # the UART is the sensor's
    other = _fat(image, 3, "cmdline.txt")
    assert f"root=PARTUUID={DISK_ID}-06" in other and "rauc.slot=B" in other
    config = _fat(image, 2, "config.txt")
    assert config.startswith("arm_64bit=1\n")  # the release's own settings kept
    for line in ("enable_uart=1", "dtoverlay=disable-bt", "camera_auto_detect=1",
                 "dtparam=watchdog=on"):  # fmt: skip
        assert line in config.splitlines()
    kernel = (image.parent.parent / "boot" / "kernel_2712.img").read_bytes()
    part = read_partitions(image)[3]
    got = subprocess.run(["mtype", "-i", f"{image}@@{part.start}", "::/kernel_2712.img"],
                         capture_output=True, check=True).stdout  # fmt: skip
    assert got == kernel  # each slot carries its own kernel and firmware files


def test_both_roots_are_read_only_with_rauc_and_the_shared_data_partition(
    image: Path, tmp_path: Path
) -> None:
    for number in (5, 6):
        files = _ext4(image, number, tmp_path, "/etc/fstab", "/etc/rauc/system.conf",
                      "/etc/os-release", "/etc/rauc/release-ca.pem")  # fmt: skip
        fstab = files["/etc/fstab"]
        assert "/dev/mmcblk0p1  /boot/autoboot" in fstab and "/dev/mmcblk0p7  /data" in fstab
        data_line = next(line for line in fstab.splitlines() if " /data " in line)
        assert "x-systemd.growfs" in data_line  # the file system follows the grown partition
        assert "/data/kiosk     /var/lib/kiosk" in fstab  # the outbox survives a slot flip
        assert files["/etc/rauc/system.conf"] == (SHIPPED / "rauc" / "system.conf").read_text()
        assert "BEGIN CERTIFICATE" in files["/etc/rauc/release-ca.pem"]
        assert "synthetic test root" in files["/etc/os-release"]


def test_the_console_never_blanks(image: Path) -> None:
    """The touchscreen is the kiosk: no console blanking, whatever the kernel's default
    (docs/ui.md)."""
    for boot in (2, 3):
        assert "consoleblank=0" in _fat(image, boot, "cmdline.txt").split()


def test_the_firmware_watchdog_is_handed_to_systemd(image: Path) -> None:
    """The firmware arms the watchdog before the kernel and hands it over
    (kernel_watchdog_timeout, which becomes watchdog.open_timeout), the initramfs is told not
    to disarm it, and systemd, which must then open it in time, is set to (RuntimeWatchdogSec:
    without it the Pi would reset at the end of every open timeout)."""
    runtime = (SHIPPED.parent / "systemd" / "system.conf.d" / "kiosk-watchdog.conf").read_text()
    match = re.search(r"(?m)^RuntimeWatchdogSec=(\d+)s$", runtime)
    assert match and 0 < int(match.group(1)) < 15  # the BCM2835's ceiling (docs/systemd.md)
    for boot in (2, 3):
        words = _fat(image, boot, "cmdline.txt").split()
        # Raspberry Pi OS's initramfs disarms the watchdog unless it finds " watchdog_disarm=0"
        assert "watchdog_disarm=0" in words[1:]
        config = _fat(image, boot, "config.txt").splitlines()
        timeouts = [line for line in config if line.startswith("kernel_watchdog_timeout=")]
        assert len(timeouts) == 1, timeouts
        open_timeout = int(timeouts[0].split("=", 1)[1])
        # long enough for the kernel to reach PID 1 on a slow card, short enough that a hung
        # trial boot is back on the committed slot within a minute
        assert 15 <= open_timeout <= 60
        # which slot to boot after a reset is autoboot.txt's (tryboot), not a fixed partition
        assert not any(line.startswith("kernel_watchdog_partition") for line in config)


def test_the_journal_lives_on_the_data_partition(image: Path, tmp_path: Path) -> None:
    for number in (5, 6):
        fstab = _ext4(image, number, tmp_path, "/etc/fstab")["/etc/fstab"]
        line = next(line for line in fstab.splitlines() if " /var/log/journal " in line)
        assert line.split()[:3] == ["/data/journal", "/var/log/journal", "none"]
        assert _dirs(image, number, tmp_path, "/var/log/journal") == {"/var/log/journal": True}
    assert _dirs(image, 7, tmp_path, "/journal", "/kiosk") == {"/journal": True, "/kiosk": True}


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "boot").mkdir()
    (tmp_path / "ca.pem").write_text("not a certificate")
    out = tmp_path / "out" / "kiosk.img"
    with pytest.raises(ImageError, match="not a PEM certificate"):
        build(tmp_path / "root", tmp_path / "boot", out, release_ca=tmp_path / "ca.pem")
    with pytest.raises(ImageError, match="is not a folder"):
        build(tmp_path / "nope", tmp_path / "boot", out, release_ca=tmp_path / "ca.pem")
    assert not out.exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_flashing_writes_the_image_block_for_block(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "card.img"
    assert kioskctl(["flash", str(image), str(target)]) == 0
    assert "every written block checked" in capsys.readouterr().out
    assert _sha(target) == _sha(image)
    assert (image.parent / "kiosk.img.sha256").read_text().split()[0] == _sha(image)


def test_a_corrupted_image_is_caught_by_the_block_map(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "kiosk.img"
    shutil.copy(image, bad)
    shutil.copy(f"{image}.bmap", f"{bad}.bmap")
    start = read_partitions(bad)[2].start + 4096  # inside the boot partition's data
    with bad.open("r+b") as f:
        f.seek(start)
        byte = f.read(1)
        f.seek(start)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert kioskctl(["flash", str(bad), str(tmp_path / "card.img")]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "checksum" in out.lower()


def test_without_the_block_map_nothing_is_written(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = tmp_path / "kiosk.img"
    shutil.copy(image, lone)
    assert kioskctl(["flash", str(lone), str(tmp_path / "card.img")]) == 1
    assert "bmap is missing" in capsys.readouterr().out
    assert not (tmp_path / "card.img").exists()


def _sysfs(tmp_path: Path, size_bytes: int, removable: bool) -> Path:
    info = tmp_path / "sys-class-block" / "fake"
    info.mkdir(parents=True)
    (info / "size").write_text(f"{size_bytes // 512}\n")
    (info / "removable").write_text("1\n" if removable else "0\n")
    return info


@pytest.fixture
def a_block_device() -> Path:
    """Any block device node on this machine, to be *checked* (never written: every case
    below must be refused before bmaptool runs)."""
    for dev in sorted(Path("/dev").iterdir()):
        if dev.name.startswith("loop") and dev.is_block_device():
            return dev
    pytest.skip("no block device node here to check the guards against (no /dev/loop*)")


def test_a_mounted_disk_is_refused_by_name_and_partition(
    a_block_device: Path, tmp_path: Path
) -> None:
    info = _sysfs(tmp_path, 32 * 10**9, removable=True)
    mounts = tmp_path / "mounts"
    for src in (str(a_block_device), f"{a_block_device}p1", f"{a_block_device}p12"):
        mounts.write_text(f"{src} /media/engineer/bootfs vfat rw 0 0\n")
        with pytest.raises(FlashRefused, match=r"in use \(mounted at /media/engineer/bootfs"):
            check_target(a_block_device, 10**9, mounts=mounts, sys_block=lambda d: info)
    # another device whose name starts the same (loop0 / loop00) is not a partition of it
    mounts.write_text(f"{a_block_device}0 /other ext4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    assert check_target(a_block_device, 10**9, mounts=mounts, sys_block=lambda d: info).block


def test_a_fixed_disk_or_a_small_card_is_refused(a_block_device: Path, tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    fixed = _sysfs(tmp_path / "f", 512 * 10**9, removable=False)
    with pytest.raises(FlashRefused, match="fixed disk"):
        check_target(a_block_device, 10**9, mounts=mounts, sys_block=lambda d: fixed)
    assert check_target(a_block_device, 10**9, mounts=mounts, sys_block=lambda d: fixed,
                        force=True).size == 512 * 10**9  # fmt: skip
    small = _sysfs(tmp_path / "s", 2 * 10**9, removable=True)
    with pytest.raises(FlashRefused, match="use a bigger card"):
        check_target(a_block_device, 4 * 10**9, mounts=mounts, sys_block=lambda d: small)
    with pytest.raises(FlashRefused, match="is the card reader plugged in"):
        check_target(Path("/dev/sdzz"), 10**9, mounts=mounts)


def test_the_image_builder_command_line(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN PRIVATE KEY-----\n")  # the wrong file
    done = subprocess.run(
        [sys.executable, "-m", "firmware.image", "--rootfs", str(tmp_path),
         "--boot", str(tmp_path), "--release-ca", str(tmp_path / "ca.pem"),
         "--out", str(tmp_path / "x.img")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "is not a PEM certificate" in done.stderr
