"""The first boot grows the data partition to the end of the card (daemon/growdata.py).

The card is the real image (conftest.py) copied onto a bigger sparse file, as `kioskctl flash`
puts it on a bigger SD card. The table is read back with sfdisk, the data partition's ext4
with e2fsck and debugfs. On a real block device (a loop device with its partitions, when this
machine allows them) the kernel's view of the partition is checked too, and the outbox's file
system is grown to fill it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.growdata import (
    SLACK_BYTES,
    Entry,
    GrowError,
    Table,
    apply,
    grow,
    main,
    partition_fill,
    plan,
    read_table,
)
from firmware.image import DATA_PARTITION, TOOLS

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in (*TOOLS, "resizepart", "e2fsck")),
    reason="needs fdisk, util-linux and e2fsprogs (hil/test_deps.sh installs them)",
)
MIB = 1024 * 1024
EXTRA = 200 * MIB


def _card(image: Path, folder: Path, extra: int = EXTRA) -> Path:
    """The image on a card ``extra`` bytes bigger than the image (sparse)."""
    card = folder / "card.img"
    shutil.copyfile(image, card)
    with card.open("r+b") as f:
        f.truncate(image.stat().st_size + extra)
    return card


def _layout(card: Path) -> dict[int, tuple[int, int]]:
    return {n: (e.start, e.size) for n, e in read_table(card).entries.items()}


def _verify(card: Path) -> str:
    done = subprocess.run(["sfdisk", "--verify", str(card)], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _data_fs(card: Path, folder: Path, size: int) -> Path:
    """The first ``size`` bytes of the data partition, as a file e2fsck and debugfs can read."""
    start = read_table(card).entries[DATA_PARTITION].start * 512
    fs = folder / "data.ext4"
    with card.open("rb") as src, fs.open("wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    return fs


def test_the_first_boot_grows_the_data_partition_to_the_end_of_the_card(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _card(image, tmp_path)
    before = _layout(card)
    old_data = before[DATA_PARTITION][1] * 512

    assert main(["--disk", str(card), "--number", "7"]) == 0

    after = _layout(card)
    card_sectors = card.stat().st_size // 512
    for n in (1, 2, 3, 5, 6):  # the boot partitions and both system slots do not move
        assert after[n] == before[n]
    start, size = after[DATA_PARTITION]
    assert start == before[DATA_PARTITION][0]  # the outbox's file system stays where it was
    assert (start + size) * 512 > card.stat().st_size - MIB  # it reaches the end of the card
    assert size * 512 >= old_data + EXTRA - MIB
    assert sum(after[4]) == card_sectors  # the extended container grew with it
    assert "No errors detected" in _verify(card)
    # the data file system (the outbox, RAUC's state) is untouched by the table change
    fs = _data_fs(card, tmp_path, old_data)
    fsck = subprocess.run(["e2fsck", "-fn", str(fs)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    listing = subprocess.run(["debugfs", "-R", "ls /", str(fs)], capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
    assert "kiosk" in listing and "rauc" in listing
    out = capsys.readouterr().out
    assert f"grown from {old_data // MIB} MiB to {size * 512 // MIB} MiB" in out


def test_every_later_boot_reads_the_table_and_changes_nothing(image: Path, tmp_path: Path) -> None:
    card = _card(image, tmp_path)
    assert main(["--disk", str(card), "--number", "7"]) == 0
    grown = card.read_bytes()[: 256 * MIB]
    assert main(["--disk", str(card), "--number", "7"]) == 0
    assert card.read_bytes()[: 256 * MIB] == grown
    # and a card exactly the size of the image (nothing to grow into) is left as it is
    (tmp_path / "same").mkdir()
    same = _card(image, tmp_path / "same", extra=0)
    assert not plan(read_table(same), 7, same.stat().st_size // 512).needed
    assert main(["--disk", str(same), "--number", "7"]) == 0
    assert same.read_bytes() == image.read_bytes()


def test_a_power_cut_between_the_two_table_writes_is_finished_by_the_next_boot(
    image: Path, tmp_path: Path
) -> None:
    card = _card(image, tmp_path)
    table = read_table(card)
    full = plan(table, DATA_PARTITION, card.stat().st_size // 512)
    assert full.grow == (4, DATA_PARTITION)  # the container first, then the data partition
    # power lost after the first write: only the extended partition has grown
    half = apply(card, dataclasses.replace(full, grow=(4,)), tell_kernel=False)
    assert half.entries[DATA_PARTITION].size == table.entries[DATA_PARTITION].size
    _verify(card)  # the half-done table is a valid table: the card still boots
    again, _said = grow(card, DATA_PARTITION, tell_kernel=False)
    assert again.grow == (DATA_PARTITION,)
    assert sum(_layout(card)[DATA_PARTITION]) * 512 > card.stat().st_size - MIB
    _verify(card)


def test_only_the_last_partition_may_grow_and_a_refusal_changes_nothing(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = _card(image, tmp_path)
    before = card.read_bytes()[: 256 * MIB]
    assert main(["--disk", str(card), "--number", "5"]) == 1
    assert "followed by partition 6" in capsys.readouterr().err
    assert main(["--disk", str(card), "--number", "9"]) == 1
    assert "has no partition 9" in capsys.readouterr().err
    assert main(["--disk", str(card), "--number", "4"]) == 1
    assert "extended container" in capsys.readouterr().err
    assert main(["--disk", str(card)]) == 1
    assert "--disk needs --number" in capsys.readouterr().err
    assert main(["--partition", str(tmp_path / "mmcblk9p7")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["--disk", str(card), "--number", "7", "--dry-run"]) == 0
    assert "would grow partition(s) 4,7" in capsys.readouterr().out
    assert card.read_bytes()[: 256 * MIB] == before
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"\x00" * MIB)
    with pytest.raises(GrowError, match="no partition table"):
        read_table(garbage)


def test_a_gpt_disk_gets_its_backup_table_moved_to_the_new_end(tmp_path: Path) -> None:
    disk = tmp_path / "gpt.img"
    with disk.open("wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\nsize=8MiB\nsize=16MiB\n",
                   text=True, check=True, timeout=30)  # fmt: skip
    with disk.open("r+b") as f:
        f.truncate(256 * MIB)
    assert main(["--disk", str(disk), "--number", "2"]) == 0
    raw = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True,
                                    text=True, check=True).stdout)["partitiontable"]  # fmt: skip
    assert raw["lastlba"] == 256 * MIB // 512 - 34  # the backup header is at the new end
    part = raw["partitions"][1]
    assert (part["start"] + part["size"]) * 512 > 256 * MIB - MIB
    _verify(disk)


# --- on a real block device ---------------------------------------------------------------
def _loop_partitions_available() -> str | None:
    """Why loop devices with partitions cannot be used here, or None if they can."""
    if shutil.which("losetup") is None or shutil.which("partx") is None:
        return "needs losetup and partx (util-linux)"
    if not Path("/dev/loop-control").exists():
        return "this machine has no loop devices (/dev/loop-control)"
    if os.geteuid() != 0:
        return "attaching a loop device needs root"
    return None


def _cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))  # CAP_SYS_RESOURCE
    return False


@contextlib.contextmanager
def _attached(card: Path) -> Iterator[Path]:
    found = subprocess.run(["losetup", "--find", "--show", str(card)], capture_output=True,
                           text=True, check=True, timeout=30)  # fmt: skip
    loop = Path(found.stdout.strip())
    try:
        subprocess.run(["partx", "--add", str(loop)], capture_output=True, check=True, timeout=30)
        yield loop
    finally:
        subprocess.run(["partx", "--delete", str(loop)], capture_output=True, timeout=30)
        subprocess.run(["losetup", "--detach", str(loop)], capture_output=True, timeout=30)


@contextlib.contextmanager
def _mounted(device: Path, at: Path) -> Iterator[Path]:
    at.mkdir()
    subprocess.run(["mount", "-t", "ext4", str(device), str(at)], capture_output=True,
                   check=True, timeout=30)  # fmt: skip
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], capture_output=True, timeout=30)


NO_LOOP = _loop_partitions_available()


@pytest.mark.skipif(NO_LOOP is not None, reason=str(NO_LOOP))
def test_on_a_block_device_the_kernel_sees_the_new_size_and_the_data_survives(
    image: Path, tmp_path: Path
) -> None:
    card = _card(image, tmp_path)
    with _attached(card) as loop:
        data = Path(f"{loop}p{DATA_PARTITION}")
        sysfs = Path("/sys/class/block") / data.name / "size"
        old = int(sysfs.read_text())
        with _mounted(data, tmp_path / "m1") as m:  # the outbox before the first boot's growth
            (m / "kiosk" / "outbox-marker").write_bytes(b"queued check-ins")
        assert main(["--partition", str(data)]) == 0  # as kiosk-grow-data.service runs it
        new = int(sysfs.read_text())
        assert new == read_table(card).entries[DATA_PARTITION].size  # the kernel was told
        assert new * 512 >= old * 512 + EXTRA - MIB
        # the file system then fills the partition: the end state of x-systemd.growfs
        subprocess.run(["e2fsck", "-fy", str(data)], capture_output=True, timeout=60, check=True)
        subprocess.run(["resize2fs", str(data)], capture_output=True, timeout=60, check=True)
        with _mounted(data, tmp_path / "m2") as m:
            assert (m / "kiosk" / "outbox-marker").read_bytes() == b"queued check-ins"
            st = shutil.disk_usage(m)
            assert st.total > (old * 512 + EXTRA) * 0.9
            fill = partition_fill(m)  # what `kioskctl doctor` reads, from the real sysfs
            assert fill is not None and fill.partition == new * 512
            assert fill.unused_after < SLACK_BYTES
        assert main(["--partition", str(data)]) == 0  # the next boot: nothing to do
        assert int(sysfs.read_text()) == new


@pytest.mark.skipif(NO_LOOP is not None, reason=str(NO_LOOP))
@pytest.mark.skipif(
    not _cap_sys_resource(),
    reason="growing a mounted ext4 (EXT4_IOC_RESIZE_FS, as systemd-growfs does) needs "
    "CAP_SYS_RESOURCE, which this container does not grant; the offline resize above "
    "checks the same end state",
)
def test_systemd_growfs_grows_the_mounted_outbox_file_system(image: Path, tmp_path: Path) -> None:
    growfs = next(
        (p for p in ("/usr/lib/systemd/systemd-growfs", "/lib/systemd/systemd-growfs")
         if Path(p).exists()), None,
    )  # fmt: skip
    assert growfs, "systemd-growfs is part of systemd (hil/test_deps.sh installs it)"
    card = _card(image, tmp_path)
    with _attached(card) as loop:
        data = Path(f"{loop}p{DATA_PARTITION}")
        assert main(["--partition", str(data)]) == 0
        with _mounted(data, tmp_path / "m") as m:
            small = shutil.disk_usage(m).total
            subprocess.run([growfs, str(m)], capture_output=True, timeout=60, check=True)
            assert shutil.disk_usage(m).total > small + EXTRA * 0.8


def test_slack_keeps_an_almost_full_card_from_being_touched() -> None:
    t = Table("dos", 512, {1: Entry(1, 2048, 4096, "83")})
    end = 2048 + 4096
    assert not plan(t, 1, end + SLACK_BYTES // 512 - 1).needed
    assert plan(t, 1, end + SLACK_BYTES // 512 + 1).grow == (1,)
