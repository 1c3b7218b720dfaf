"""Assemble the kiosk's SD-card image: the A/B layout of docs/updates.md, from a root file
system tree and the Raspberry Pi boot files, without mounting anything (so it runs unprivileged
and in containers).

    python -m firmware.image --rootfs ROOTFS --boot BOOTFILES --release-ca CA.pem --out kiosk.img

``ROOTFS`` is the Raspberry Pi OS (Bookworm, arm64) tree with the kiosk installed
(firmware/rootfs/install-kiosk.sh); ``BOOTFILES`` is that release's boot partition content
(firmware blobs, kernel, device trees, overlays). Both slots get the same system, so a new card
has a working fallback from its first boot. Writes ``kiosk.img``, ``kiosk.img.bmap`` (for
``kioskctl flash``; bmaptool) and ``kiosk.img.sha256``.

Tools: sfdisk (fdisk), mkfs.vfat (dosfstools), mcopy (mtools), mkfs.ext4 and debugfs
(e2fsprogs), bmaptool (bmap-tools).

May import: the standard library, ``daemon.bootslots``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.bootslots import PARTITIONS, Autoboot

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
SECTOR = 512
TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "bmaptool")
ROOT_PARTITION = {name: n + 3 for name, n in PARTITIONS.items()}  # A: p5, B: p6
DATA_PARTITION = 7

#: what the kiosk needs of the firmware, appended to each slot's config.txt
CONFIG_TXT = """
# --- probation kiosk (firmware/image.py) ---
[all]
# the fingerprint sensor on the PL011 UART, GPIO14/15 (Bluetooth moved off it)
enable_uart=1
dtoverlay=disable-bt
# the CSI camera
camera_auto_detect=1
# the SoC watchdog, fed by systemd (RuntimeWatchdogSec, docs/systemd.md)
dtparam=watchdog=on
# ...started by the firmware before the kernel, and handed to it as watchdog.open_timeout:
# the kernel keeps it fed for up to 30 s, by when PID 1 must have opened it (systemd's
# RuntimeWatchdogSec=14s takes over). A kernel or early boot that hangs resets the Pi; on an
# update's trial boot, the one-shot tryboot flag is then gone and the committed slot boots.
# No kernel_watchdog_partition: the slot to fall back to is autoboot.txt's to say, not a
# fixed partition number (docs/updates.md).
kernel_watchdog_timeout=30
# no rainbow splash, no waiting on a missing HDMI
disable_splash=1
"""

FSTAB = """# Written by firmware/image.py. The root is read-only; what changes lives on the data
# partition, shared by both slots. It fills the card after the first boot: kiosk-grow-data
# grows the partition, x-systemd.growfs the file system.
proc            /proc           proc    defaults                        0 0
/dev/mmcblk0p1  /boot/autoboot  vfat    defaults,noatime,umask=0022     0 2
/dev/mmcblk0p7  /data           ext4    defaults,noatime,commit=5,x-systemd.growfs 0 2
/data/kiosk     /var/lib/kiosk  none    bind,x-systemd.requires=/data   0 0
/data/rauc      /var/lib/rauc   none    bind,x-systemd.requires=/data   0 0
# The system journal, so a boot that ended in a watchdog reset or a failed trial leaves its
# logs (systemd/journald.conf.d caps them). journald writes to /run until this is mounted,
# then flushes to it (systemd-journal-flush). nofail: without it the kiosk still boots, with
# a volatile journal; so it does under a machine ID made up for one boot
# (systemd/var-log-journal.mount.d).
/data/journal   /var/log/journal none   bind,nofail,x-systemd.requires=/data 0 0
tmpfs           /tmp            tmpfs   mode=1777,nosuid,nodev          0 0
tmpfs           /var/tmp        tmpfs   mode=1777,nosuid,nodev          0 0
"""


class ImageError(Exception):
    """The image could not be built; the message says what to do."""


@dataclass(frozen=True)
class Sizes:
    autoboot_mib: int = 16
    boot_mib: int = 256
    root_mib: int = 2560
    data_mib: int = 1024


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise ImageError(
            "missing tools: " + ", ".join(missing) + ". On Debian: apt-get install fdisk "
            "dosfstools mtools e2fsprogs bmap-tools"
        )


def _run(args: Sequence[str], *, stdin: str | None = None) -> str:
    done = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise ImageError(f"{args[0]} failed: {(done.stderr or done.stdout).strip()[:400]}")
    return done.stdout


def cmdline(disk_id: str, slot: str) -> str:
    """The kernel command line of ``slot``: its own root, read-only, and ``rauc.slot`` (how
    RAUC 1.8 knows which slot it booted).

    Also: ``consoleblank=0``, the console never blanks, whatever the kernel's default (the
    touchscreen is the kiosk; docs/ui.md); ``watchdog_disarm=0``, Raspberry Pi OS's
    initramfs (raspberrypi-sys-mods, scripts/init-top/rpi_wd) otherwise stops the watchdog
    the firmware started (``kernel_watchdog_timeout`` in :data:`CONFIG_TXT`), and a boot
    that then hangs before systemd would hang for good. That script looks for the word with
    a space before it, so it is never the first."""
    part = ROOT_PARTITION[slot]
    # no serial console: the UART belongs to the fingerprint sensor
    return (
        f"console=tty1 root=PARTUUID={disk_id}-{part:02d} rootfstype=ext4 ro rootwait "
        f"fsck.repair=yes rauc.slot={slot} consoleblank=0 watchdog_disarm=0 quiet\n"
    )


def partition_table(sizes: Sizes, disk_id: str) -> str:
    boot = "type=c"
    return "\n".join(
        [
            "label: dos",
            f"label-id: 0x{disk_id}",
            "unit: sectors",
            f"start=2048, size={sizes.autoboot_mib}MiB, {boot}",  # p1 autoboot
            f"size={sizes.boot_mib}MiB, {boot}",  # p2 boot A
            f"size={sizes.boot_mib}MiB, {boot}",  # p3 boot B
            "type=5",  # p4 extended: the rest
            f"size={sizes.root_mib}MiB, type=83",  # p5 root A
            f"size={sizes.root_mib}MiB, type=83",  # p6 root B
            f"size={sizes.data_mib}MiB, type=83",  # p7 data
            "",
        ]
    )


def read_partitions(image: Path) -> dict[int, Partition]:
    table = json.loads(_run(["sfdisk", "--json", str(image)]))["partitiontable"]
    parts: dict[int, Partition] = {}
    for p in table["partitions"]:
        n = int(p["node"].rsplit(str(image.name), 1)[-1].lstrip("p") or 0)
        parts[n] = Partition(n, int(p["start"]) * SECTOR, int(p["size"]) * SECTOR)
    return parts


def _copy_into(image: Path, part: Partition, fs: Path) -> None:
    """Copy a file system image into its partition, skipping zero blocks (the image stays
    sparse, and bmaptool later writes only what is mapped)."""
    if fs.stat().st_size > part.size:
        raise ImageError(f"partition {part.number} is too small for its file system")
    block = MIB
    zero = bytes(block)
    with fs.open("rb") as src, image.open("r+b") as dst:
        offset = 0
        while chunk := src.read(block):
            if chunk != zero[: len(chunk)]:
                dst.seek(part.start + offset)
                dst.write(chunk)
            offset += len(chunk)


def _fat(path: Path, label: str, size_mib: int, files: dict[str, bytes], tree: Path | None) -> None:
    _run(["mkfs.vfat", "-n", label, "-C", str(path), str(size_mib * 1024)])
    mcopy = ["mcopy", "-i", str(path), "-o"]  # -o: the given file wins over one from the tree
    if tree is not None:
        entries = sorted(tree.iterdir())
        if entries:
            _run([*mcopy, "-s", *map(str, entries), "::/"])
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            f = Path(tmp) / name
            f.write_bytes(data)
            _run([*mcopy, str(f), f"::/{name}"])


def _ext4(path: Path, label: str, size_mib: int, tree: Path | None) -> None:
    args = ["mkfs.ext4", "-q", "-F", "-L", label, "-E", "lazy_itable_init=0,lazy_journal_init=0"]
    if tree is not None:
        args += ["-d", str(tree)]
    _run([*args, str(path), f"{size_mib}M"])


def _inject(fs: Path, files: dict[str, tuple[bytes, int]], dirs: Sequence[str]) -> None:
    """Put files into an ext4 image with debugfs (no mount): replace them if present."""
    with tempfile.TemporaryDirectory() as tmp:
        cmds = []
        for d in dirs:
            cmds.append(f"mkdir {d}")
        for i, (dest, (data, mode)) in enumerate(sorted(files.items())):
            src = Path(tmp) / f"f{i}"
            src.write_bytes(data)
            parent = str(Path(dest).parent)
            cmds += [f"mkdir {parent}", f"rm {dest}", f"write {src} {dest}"]
            cmds += [
                f"sif {dest} mode 0{0o100000 | mode:o}",
                f"sif {dest} uid 0",
                f"sif {dest} gid 0",
            ]
        script = Path(tmp) / "cmds"
        script.write_text("\n".join(cmds) + "\n")
        _run(["debugfs", "-w", "-f", str(script), str(fs)])


def _config_txt(boot: Path) -> bytes:
    base = boot / "config.txt"
    head = base.read_text() if base.exists() else ""
    return (head.rstrip("\n") + "\n" + CONFIG_TXT).encode()


def build(
    rootfs: Path,
    boot: Path,
    out: Path,
    *,
    release_ca: Path,
    sizes: Sizes = Sizes(),
    disk_id: str | None = None,
) -> Path:
    """Build ``out`` (and ``out``.bmap, ``out``.sha256); return ``out``."""
    check_tools()
    for what, p in (("--rootfs", rootfs), ("--boot", boot)):
        if not p.is_dir():
            raise ImageError(f"{what} {p} is not a folder")
    if not release_ca.is_file() or b"BEGIN CERTIFICATE" not in release_ca.read_bytes():
        raise ImageError(
            f"--release-ca {release_ca} is not a PEM certificate: RAUC would accept no update"
        )
    disk_id = disk_id or secrets.token_hex(4)
    if len(disk_id) != 8 or any(c not in "0123456789abcdef" for c in disk_id):
        raise ImageError("--disk-id must be 8 lowercase hex digits")
    total = 1 + sizes.autoboot_mib + 2 * sizes.boot_mib + 8 + 2 * sizes.root_mib + sizes.data_mib
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".part")
    with tmp_out.open("wb") as f:
        f.truncate(total * MIB)
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(tmp_out)],
         stdin=partition_table(sizes, disk_id))  # fmt: skip
    parts = read_partitions(tmp_out)
    autoboot = Autoboot(committed=PARTITIONS["A"], trial=PARTITIONS["A"]).render().encode()
    rauc_conf = (HERE / "rauc" / "system.conf").read_bytes()
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        w = Path(work)
        fs = w / "p1.vfat"
        _fat(fs, "AUTOBOOT", sizes.autoboot_mib, {"autoboot.txt": autoboot}, None)
        _copy_into(tmp_out, parts[1], fs)
        for slot, n in sorted(PARTITIONS.items()):
            fs = w / f"p{n}.vfat"
            files = {
                "cmdline.txt": cmdline(disk_id, slot).encode(),
                "config.txt": _config_txt(boot),
            }
            _fat(fs, f"BOOT_{slot}", sizes.boot_mib, files, boot)
            _copy_into(tmp_out, parts[n], fs)
            fs.unlink()
        root = w / "root.ext4"
        _ext4(root, "root", sizes.root_mib, rootfs)
        _inject(
            root,
            {
                "/etc/fstab": (FSTAB.encode(), 0o644),
                "/etc/rauc/system.conf": (rauc_conf, 0o644),
                "/etc/rauc/release-ca.pem": (release_ca.read_bytes(), 0o644),
            },
            ["/boot", "/boot/autoboot", "/data", "/var", "/var/lib", "/var/lib/kiosk",
             "/var/lib/rauc", "/var/log", "/var/log/journal"],
        )  # fmt: skip
        for slot in sorted(ROOT_PARTITION):
            _copy_into(tmp_out, parts[ROOT_PARTITION[slot]], root)
        root.unlink()
        data = w / "data.ext4"
        _ext4(data, "data", sizes.data_mib, None)
        _inject(data, {}, ["/kiosk", "/rauc", "/journal"])
        _copy_into(tmp_out, parts[DATA_PARTITION], data)
    os.replace(tmp_out, out)
    _run(["bmaptool", "create", "-o", f"{out}.bmap", str(out)])
    digest = hashlib.sha256()
    with out.open("rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    Path(f"{out}.sha256").write_text(f"{digest.hexdigest()}  {out.name}\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firmware.image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--rootfs", type=Path, required=True, help="the root file system tree")
    p.add_argument("--boot", type=Path, required=True, help="the boot partition's files")
    p.add_argument("--release-ca", type=Path, required=True,
                   help="the CA that signs update bundles (PEM)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the image to write")
    p.add_argument("--root-mib", type=int, default=Sizes.root_mib)
    p.add_argument("--boot-mib", type=int, default=Sizes.boot_mib)
    p.add_argument("--data-mib", type=int, default=Sizes.data_mib)
    p.add_argument("--disk-id", help="MBR disk identifier, 8 hex digits (default: random)")
    a = p.parse_args(argv)
    try:
        sizes = Sizes(boot_mib=a.boot_mib, root_mib=a.root_mib, data_mib=a.data_mib)
        out = build(a.rootfs, a.boot, a.out, release_ca=a.release_ca, disk_id=a.disk_id,
                    sizes=sizes)  # fmt: skip
    except ImageError as exc:
        print(f"firmware.image: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}, {out}.bmap and {out}.sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
