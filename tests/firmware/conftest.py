"""The SD-card image, built once for the firmware tests from a small synthetic root file system
and boot folder (the real inputs are the Raspberry Pi OS release and its boot files, gigabytes
the tests do not download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firmware.image import Sizes, build
from tests.updates.test_rauc_update import _pki

DISK_ID = "4b696f73"
SMALL = Sizes(autoboot_mib=8, boot_mib=40, root_mib=48, data_mib=24)
SHIPPED = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("image-src")
    root, boot = src / "root", src / "boot"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('PRETTY_NAME="synthetic test root"\n')
    (root / "etc" / "fstab").write_text("# the distribution's, to be replaced\n")
    (root / "opt" / "kiosk" / "bin").mkdir(parents=True)
    (root / "opt" / "kiosk" / "bin" / "kiosk").write_text("#!/bin/sh\n")
    (boot / "overlays").mkdir(parents=True)
    (boot / "config.txt").write_text("arm_64bit=1\n")
    (boot / "kernel_2712.img").write_bytes(os.urandom(300_000))  # stands in for the kernel
    (boot / "overlays" / "disable-bt.dtbo").write_bytes(b"\xd0\x0d\xfe\xed")
    ca, _key = _pki(src, "release")
    return build(root, boot, src / "out" / "kiosk.img", release_ca=ca, sizes=SMALL,
                 disk_id=DISK_ID)  # fmt: skip
