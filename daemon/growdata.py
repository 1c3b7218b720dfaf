"""Grow the data partition to the end of the SD card, once, on the first boot after flashing.

The image (firmware/image.py) is a few GB so it flashes quickly; the card is usually bigger.
The outbox, its photos and RAUC's state live on the data partition, the last one on the card,
so the rest of the card belongs there. ``kiosk-grow-data.service`` runs this before ``/data``
is mounted; ``x-systemd.growfs`` on the ``/data`` line of fstab then grows the ext4 file system
to the new partition size once it is mounted (systemd-growfs, online).

The partition table is changed with sfdisk, one partition at a time, each a small write that
sfdisk syncs: on the kiosk's MBR card the extended partition first (the container of the
logical partitions 5-7), then the data partition. A power cut between the two leaves a table
that is valid and that the next boot finishes. On a GPT disk the backup header is first moved
to the new end of the disk. The kernel is then told the partition's new size (``resizepart``,
the BLKPG ioctl), because the disk is in use and cannot be re-read as a whole.

Nothing is done when the partition already ends within :data:`SLACK_BYTES` of the end of the
disk, so after the first boot this is a read of the table and nothing else.

Why not growpart (cloud-guest-utils) or systemd-repart: systemd-repart only handles GPT and
the Pi's firmware boots our A/B layout from MBR; growpart would be one more package on the
image for what is two sfdisk calls here. The writing itself is sfdisk's.

    kiosk-grow-data [--partition /dev/mmcblk0p7] [--dry-run]
    kiosk-grow-data --disk kiosk.img --number 7    (an image file, e.g. in tests)

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import KioskError

DEFAULT_PARTITION = Path("/dev/mmcblk0p7")
SYSFS = Path("/sys")
#: a partition ending closer than this to the end of the disk is "already grown"
SLACK_BYTES = 16 * 1024 * 1024
EXTENDED_TYPES = frozenset({"5", "f", "85"})
TOOLS = ("sfdisk", "resizepart")


class GrowError(KioskError):
    reason = "grow_data"


@dataclass(frozen=True)
class Entry:
    number: int
    start: int  # sectors
    size: int  # sectors
    type: str

    @property
    def end(self) -> int:
        """The last sector."""
        return self.start + self.size - 1


@dataclass(frozen=True)
class Table:
    label: str  # "dos" or "gpt"
    sector: int  # bytes
    entries: dict[int, Entry]


@dataclass(frozen=True)
class Plan:
    """What growing partition ``number`` of a disk of ``disk_sectors`` takes."""

    number: int
    disk_sectors: int
    relocate_gpt: bool
    grow: tuple[int, ...]  # partition numbers, in the order they are grown
    free_bytes: int  # after the partition, before growing

    @property
    def needed(self) -> bool:
        return bool(self.grow)


def _run(args: Sequence[str], *, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError as exc:
        raise GrowError(f"{args[0]} is missing: install util-linux's fdisk package") from exc
    if done.returncode != 0:
        raise GrowError(f"{' '.join(args)} failed: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def read_table(disk: Path) -> Table:
    """The partition table of ``disk`` (a block device or an image file), from sfdisk."""
    try:
        raw = json.loads(_run(["sfdisk", "--json", str(disk)]))["partitiontable"]
    except (GrowError, ValueError, KeyError) as exc:
        raise GrowError(
            f"{disk} has no partition table sfdisk can read ({exc}); is this the kiosk's card?"
        ) from exc
    entries: dict[int, Entry] = {}
    node_prefix = str(disk)
    for p in raw.get("partitions", []):
        tail = str(p["node"])[len(node_prefix) :].lstrip("p")
        number = int(tail)
        entries[number] = Entry(number, int(p["start"]), int(p["size"]), str(p["type"]).lower())
    return Table(label=str(raw["label"]), sector=int(raw.get("sectorsize", 512)), entries=entries)


def disk_bytes(disk: Path) -> int:
    """The size of a block device or a file, in bytes."""
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def plan(table: Table, number: int, disk_sectors: int) -> Plan:
    """Decide what to grow. Raises :class:`GrowError` when ``number`` is not the last
    partition on the disk (growing it would run into the next one)."""
    if number not in table.entries:
        raise GrowError(
            f"the disk has no partition {number} (it has {sorted(table.entries)}); "
            "check --partition/--number"
        )
    part = table.entries[number]
    if part.type in EXTENDED_TYPES:
        raise GrowError(f"partition {number} is the extended container; name the data partition")
    containers = [
        e
        for e in table.entries.values()
        if e.type in EXTENDED_TYPES and e.start <= part.start and part.end <= e.end
    ]
    after = sorted(
        e.number for e in table.entries.values() if e.start > part.end and e not in containers
    )
    if after:
        raise GrowError(
            f"partition {number} is followed by partition {after[0]}; only the last "
            "partition on the card can grow. Nothing was changed."
        )
    # MBR: the last sector of the disk is usable. GPT: the backup table takes the last 33.
    last_usable = disk_sectors - 1 if table.label == "dos" else disk_sectors - 34
    free = max(0, last_usable - part.end) * table.sector
    if free < SLACK_BYTES:
        return Plan(number, disk_sectors, False, (), free)
    grow = (*(c.number for c in containers if c.end < last_usable), number)
    return Plan(number, disk_sectors, table.label == "gpt", grow, free)


def _sfdisk(disk: Path, *args: str, stdin: str | None = None) -> None:
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", *args, str(disk)], stdin=stdin)


def apply(disk: Path, p: Plan, *, tell_kernel: bool) -> Table:
    """Carry out ``p`` on ``disk``; return the table read back afterwards."""
    if p.relocate_gpt:
        _sfdisk(disk, "--relocate", "gpt-bak-std")
    for n in p.grow:  # containers first: each step leaves a valid table
        _sfdisk(disk, "-N", str(n), stdin=", +\n")
    table = read_table(disk)
    grown = table.entries[p.number]
    if tell_kernel:
        _run(["resizepart", str(disk), str(p.number), str(grown.size)])
    return table


@dataclass(frozen=True)
class Fill:
    """How the partition holding a folder sits on its disk (for ``kioskctl doctor``)."""

    partition: int  # bytes
    unused_after: int  # bytes between its end and the end of the disk


def partition_fill(folder: Path, sysfs: Path = SYSFS) -> Fill | None:
    """Where the partition holding ``folder`` ends against the end of its disk, from sysfs
    (sizes there are in 512-byte units whatever the disk's sector size). None when the folder
    is not on a disk partition (tmpfs, overlay, a whole disk, a container's view)."""
    dev = os.stat(folder).st_dev
    block = sysfs / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
    try:
        if not (block / "partition").exists():
            return None
        start = int((block / "start").read_text())
        size = int((block / "size").read_text())
        disk = int((block.resolve().parent / "size").read_text())
    except (OSError, ValueError):
        return None
    return Fill(partition=size * 512, unused_after=max(0, disk - start - size) * 512)


def _block_parent(partition: Path) -> tuple[Path, int]:
    """(/dev/DISK, partition number) of a partition device, from sysfs."""
    name = partition.resolve().name
    sys_part = SYSFS / "class" / "block" / name
    number_file = sys_part / "partition"
    if not number_file.exists():
        raise GrowError(f"{partition} is not a partition (no {number_file})")
    number = int(number_file.read_text())
    disk = Path("/dev") / sys_part.resolve().parent.name
    return disk, number


def grow(
    disk: Path, number: int, *, dry_run: bool = False, tell_kernel: bool = True
) -> tuple[Plan, str]:
    """Grow partition ``number`` of ``disk`` to the end of the disk if it is not there yet.
    Returns the plan and a sentence for the journal saying what happened."""
    table = read_table(disk)
    p = plan(table, number, disk_bytes(disk) // table.sector)
    mib = 1024 * 1024
    if not p.needed:
        return p, (
            f"data partition {number} already reaches the end of the card "
            f"({p.free_bytes // mib} MiB after it); nothing to do"
        )
    before = table.entries[number].size * table.sector // mib
    if dry_run:
        return p, (
            f"would grow partition(s) {','.join(map(str, p.grow))} of {disk}: partition "
            f"{number} from {before} MiB by {p.free_bytes // mib} MiB"
        )
    after = apply(disk, p, tell_kernel=tell_kernel).entries[number].size * table.sector // mib
    return p, (
        f"data partition {number} grown from {before} MiB to {after} MiB; its file system "
        "grows when /data is mounted (x-systemd.growfs)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="kiosk-grow-data",
        description="Grow the kiosk's data partition to the end of the SD card (first boot).",
    )
    ap.add_argument("--partition", type=Path, default=None,
                    help=f"the data partition's device (default {DEFAULT_PARTITION})")  # fmt: skip
    ap.add_argument("--disk", type=Path, help="a disk or image file, with --number")
    ap.add_argument("--number", type=int, help="the partition number on --disk")
    ap.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    a = ap.parse_args(argv)
    try:
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise GrowError(f"missing {', '.join(missing)}: install util-linux and fdisk")
        if a.disk is not None:
            if a.number is None or a.partition is not None:
                raise GrowError("--disk needs --number, and not --partition")
            is_block = a.disk.resolve().is_block_device()
            _plan, said = grow(a.disk, a.number, dry_run=a.dry_run, tell_kernel=is_block)
        else:
            partition = a.partition or DEFAULT_PARTITION
            if not partition.exists():
                raise GrowError(f"{partition} does not exist: is this the kiosk's SD card?")
            disk, number = _block_parent(partition)
            _plan, said = grow(disk, number, dry_run=a.dry_run)
    except (GrowError, OSError) as exc:
        print(f"kiosk-grow-data: {exc}", file=sys.stderr)
        return 1
    print(f"kiosk-grow-data: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
