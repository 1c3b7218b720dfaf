"""``kioskctl flash IMAGE TARGET``: write a kiosk image (firmware/image.py) to an SD card on a
field engineer's laptop, with bmaptool (only the blocks that hold data, each checked against
the image's SHA-256 block map), and refuse the mistakes that destroy a laptop: a disk that is
mounted (the laptop's own), a fixed disk, a card too small.

A TARGET that is a regular file (or does not exist) gets a copy of the image: for making a
spare card's image, and for the tests.

May import: the standard library.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class FlashRefused(Exception):
    """Nothing was written; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    path: Path
    block: bool
    size: int | None  # bytes, for block devices


def _sys_block(dev: Path) -> Path:
    return Path("/sys/class/block") / dev.name


def _mounted_under(dev: Path, mounts: Path) -> list[str]:
    """Mount points of ``dev`` or any of its partitions (``/dev/sdb`` → ``/dev/sdb1``,
    ``/dev/mmcblk0`` → ``/dev/mmcblk0p1``)."""
    real = os.path.realpath(dev)
    # the kernel's naming: sdb -> sdb1, but mmcblk0 -> mmcblk0p1 (a name ending in a digit)
    sep = "p" if real[-1:].isdigit() else ""
    found = []
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith("/dev/"):
            continue
        src = os.path.realpath(fields[0])
        tail = src[len(real) :]
        if src == real or (src.startswith(real + sep) and tail[len(sep) :].isdigit()):
            found.append(fields[1].replace("\\040", " "))
    return found


def check_target(
    target: Path,
    image_size: int,
    *,
    force: bool = False,
    mounts: Path = Path("/proc/mounts"),
    sys_block: Callable[[Path], Path] = _sys_block,
) -> Target:
    """Raise FlashRefused unless writing ``image_size`` bytes to ``target`` is safe."""
    try:
        st = target.stat()
    except FileNotFoundError:
        if target.parent.is_dir() and not str(target).startswith("/dev/"):
            return Target(target, block=False, size=None)
        raise FlashRefused(
            f"{target} does not exist: is the card reader plugged in? (lsblk)"
        ) from None
    if stat.S_ISREG(st.st_mode):
        return Target(target, block=False, size=None)
    if not stat.S_ISBLK(st.st_mode):
        raise FlashRefused(f"{target} is neither a disk nor a file")
    mounted = _mounted_under(target, mounts)
    if mounted:
        raise FlashRefused(
            f"{target} is in use (mounted at {', '.join(mounted)}). If that is the card, "
            f"unmount it first (udisksctl unmount, or umount); if it is this computer's own "
            "disk, you named the wrong device: check with lsblk."
        )
    info = sys_block(target)
    try:
        size = int((info / "size").read_text()) * 512
    except (OSError, ValueError):
        raise FlashRefused(f"cannot read the size of {target} from {info}") from None
    removable = (info / "removable").exists() and (info / "removable").read_text().strip() == "1"
    if not removable and not force:
        raise FlashRefused(
            f"{target} is a fixed disk, not a removable card ({size // 10**9} GB). Cards in some "
            "USB readers report fixed: if you are sure, add --force."
        )
    if size < image_size:
        raise FlashRefused(
            f"{target} holds {size / 10**9:.1f} GB; the image needs {image_size / 10**9:.1f} GB: "
            "use a bigger card"
        )
    return Target(target, block=True, size=size)


def flash(
    image: Path,
    target: Path,
    *,
    force: bool = False,
    say: Callable[[str], None] = print,
    mounts: Path = Path("/proc/mounts"),
    sys_block: Callable[[Path], Path] = _sys_block,
    terminal: bool = False,
) -> int:
    """0 written and checked; 1 refused or failed (the message says what to do).
    ``terminal``: show bmaptool's own progress bar (standard error is a terminal)."""
    if shutil.which("bmaptool") is None:
        say("bmaptool is not installed: apt-get install bmap-tools")
        return 1
    bmap = Path(f"{image}.bmap")
    if not image.is_file():
        say(f"{image} is not a file")
        return 1
    if not bmap.is_file():
        say(
            f"{bmap} is missing: without the block map nothing can check the written blocks. "
            "Take the .img and .img.bmap from the same release."
        )
        return 1
    try:
        where = check_target(
            target, image.stat().st_size, force=force, mounts=mounts, sys_block=sys_block
        )
    except FlashRefused as exc:
        say(f"not written: {exc}")
        return 1
    say(f"writing {image.name} to {target} (only the blocks that hold data; each is checked)")
    argv = ["bmaptool", "copy", "--bmap", str(bmap), str(image), str(target)]
    if terminal:  # bmaptool draws its own progress bar on a terminal: let it through
        code, detail = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode, ""
    else:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=False)  # fmt: skip
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        code, detail = done.returncode, " / ".join(lines[-2:]) + ". "
    if code != 0:
        say(
            f"FAILED: {detail}The card is not usable as it is: write it again, or try another card."
        )
        return 1
    if where.block:
        subprocess.run(["sync"], check=False)
    say(f"done: {target} holds the image, every written block checked against the block map")
    return 0
