"""An update end to end with the real RAUC: a bundle signed with a real X.509 key, verified
and written by ``rauc`` into a slot, the boot choice made by our custom bootloader backend,
the trial boot kept or rejected by ``kioskctl selftest --commit`` through ``rauc status``.

What is not real here, and why: the slots are files, not SD-card partitions (RAUC writes
``raw`` slots to either the same way); the bundle is ``plain`` (squashfs on a loop device)
because this container has no device-mapper for ``verity``, which the shipped system.conf
requires; RAUC's service talks on a private D-Bus session bus, not the system bus; the
firmware's part of a reboot is the model in tests/updates/card.py; ``systemctl reboot`` is
recorded, not run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.config import ApiConfig, Config, DeviceConfig
from daemon.kioskctl import selftest
from daemon.kioskctl.context import Context
from daemon.kioskctl.parts import Parts, RunResult, run_command, stream_command
from daemon.kioskctl.report import failed, passed
from tests.updates.card import Card

TOOLS = ("rauc", "mksquashfs", "dbus-daemon")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs Debian's rauc, squashfs-tools and dbus-daemon (hil/test_deps.sh installs them)",
)
IMAGE_SIZE = 256 * 1024
SLOT_SIZE = 1024 * 1024


def _pki(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (test only)")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.cert.pem", folder / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Rig:
    """A kiosk card, RAUC configured for it, a private bus, and a release key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.card = Card(root)
        self.slot_a, self.slot_b = root / "slot-a.img", root / "slot-b.img"
        for s in (self.slot_a, self.slot_b):
            s.write_bytes(b"\0" * SLOT_SIZE)
        self.release_cert, self.release_key = _pki(root, "release")
        backend = root / "kiosk-bootslots"
        backend.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m daemon.bootslots "$@"\n')
        backend.chmod(0o755)
        self.conf = root / "system.conf"
        self.conf.write_text(
            "[system]\ncompatible=probation-kiosk-pi\nbootloader=custom\n"
            f"bundle-formats=plain\ndata-directory={root / 'rauc-data'}\n"
            f"[handlers]\nbootloader-custom-backend={backend}\n"
            f"[keyring]\npath={self.release_cert}\n"
            f"[slot.rootfs.0]\ndevice={self.slot_a}\ntype=raw\nbootname=A\n"
            f"[slot.rootfs.1]\ndevice={self.slot_b}\ntype=raw\nbootname=B\n"
        )
        self.env = {**os.environ, **self.card.env(), "DBUS_STARTER_BUS_TYPE": "session"}
        self.bus: subprocess.Popen[str] | None = None
        self.service: subprocess.Popen[str] | None = None
        self.recorded: list[list[str]] = []

    # --- processes ----------------------------------------------------------------------------
    def start_bus(self) -> None:
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.bus.stdout is not None
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.bus.stdout.readline().strip()

    def boot(self, *, tryboot: bool = False) -> str:
        """Power the card on (the firmware model), then start RAUC's service on that slot."""
        self.stop_service()
        part = self.card.power_on(tryboot=tryboot)
        slot = {2: "A", 3: "B"}[part]
        self.service = subprocess.Popen(
            ["rauc", f"--conf={self.conf}", "service", f"--override-boot-slot={slot}"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while self.rauc("status").returncode != 0:
            assert time.monotonic() < deadline, "rauc service did not come up"
            assert self.service.poll() is None, "rauc service exited"
            time.sleep(0.1)
        return slot

    def stop_service(self) -> None:
        if self.service is not None:
            self.service.terminate()
            self.service.wait(10)
            self.service = None

    def close(self) -> None:
        self.stop_service()
        if self.bus is not None:
            self.bus.terminate()
            self.bus.wait(10)
            if self.bus.stdout is not None:
                self.bus.stdout.close()

    def rauc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rauc", f"--conf={self.conf}", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    # --- what kioskctl runs -------------------------------------------------------------------
    def run(self, argv: list[str], timeout_s: float) -> RunResult:
        """kioskctl's command runner: rauc for real (with this rig's config and bus),
        systemctl recorded (never reboot the machine running the tests)."""
        self.recorded.append(argv)
        if argv[0] == "systemctl":
            return 0, ""
        if argv[0] == "rauc":
            done = self.rauc(*argv[1:])
            return done.returncode, done.stdout + done.stderr
        return run_command(argv, timeout_s)

    def stream(
        self, argv: list[str], timeout_s: float, on_line: Callable[[str], None]
    ) -> RunResult:
        """The real streaming runner, for rauc with this rig's config, bus and card."""
        self.recorded.append(argv)
        assert argv[0] == "rauc"
        saved = os.environ.copy()
        os.environ.update(self.env)
        try:
            return stream_command(["rauc", f"--conf={self.conf}", *argv[1:]], timeout_s, on_line)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def context(self) -> Context:
        cfg = Config(
            device=DeviceConfig(id="kiosk-test", data_dir=self.root / "data"),
            api=ApiConfig(url="https://127.0.0.1:9/"),
        )
        return Context(cfg, parts=Parts(run=self.run, stream=self.stream))

    def bundle(
        self,
        version: str,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        fmt: str = "plain",
    ) -> Path:
        src = self.root / f"src-{version}"
        src.mkdir()
        (src / "rootfs.img").write_bytes(os.urandom(IMAGE_SIZE))
        (src / "manifest.raucm").write_text(
            f"[update]\ncompatible=probation-kiosk-pi\nversion={version}\n"
            f"[bundle]\nformat={fmt}\n[image.rootfs]\nfilename=rootfs.img\n"
        )
        out = self.root / f"kiosk-{version}.raucb"
        made = subprocess.run(
            ["rauc", f"--cert={cert or self.release_cert}", f"--key={key or self.release_key}",
             "bundle", str(src), str(out)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        return out

    def image(self, version: str) -> bytes:
        return (self.root / f"src-{version}" / "rootfs.img").read_bytes()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    r.start_bus()
    try:
        r.boot()
        yield r
    finally:
        r.close()


def _installed_and_tried(rig: Rig, say: list[str]) -> None:
    bundle = rig.bundle("2.0.0")
    ctx = rig.context()
    code = selftest.update(ctx, bundle, rig.card.slots(), say=say.append)
    assert code == 0, say
    assert rig.slot_b.read_bytes()[:IMAGE_SIZE] == rig.image("2.0.0")
    assert rig.slot_a.read_bytes() == b"\0" * SLOT_SIZE  # the running slot is never written
    assert rig.recorded[-1] == ["systemctl", "reboot", "0 tryboot"]
    assert rig.card.slots().committed() == "A"
    assert rig.boot(tryboot=True) == "B"


def test_an_update_that_passes_its_self_test_is_kept(rig: Rig) -> None:
    say: list[str] = []
    _installed_and_tried(rig, say)
    rows = [passed("everything", "the running kiosk answered")]
    decision = selftest.decide(rig.context(), rows, rig.card.slots())
    assert decision.action == "committed" and decision.exit == 0
    assert ["rauc", "status", "mark-good", "booted"] in rig.recorded
    assert rig.boot() == "B"  # an ordinary power-on now starts the new system
    status = rig.rauc("status").stdout
    assert "Booted from: rootfs.1 (B)" in status and "Activated: rootfs.1 (B)" in status


def test_an_update_that_fails_its_self_test_is_rejected_and_the_old_system_returns(
    rig: Rig,
) -> None:
    say: list[str] = []
    _installed_and_tried(rig, say)
    rows = [failed("camera", "failed: camera_blank", "check the lens")]
    decision = selftest.decide(rig.context(), rows, rig.card.slots())
    assert decision.action == "rolled_back" and decision.exit == 1
    assert "REJECTED" in decision.message and "slot A, which is unchanged" in decision.message
    assert rig.recorded[-1] == ["systemctl", "reboot"]  # a plain reboot: back to A
    assert rig.boot() == "A"
    assert rig.card.slots().state("B") == "bad"
    assert rig.boot(tryboot=True) == "A"  # the rejected slot is never tried again


def test_a_trial_that_dies_before_its_self_test_is_noticed_from_the_old_slot(rig: Rig) -> None:
    say: list[str] = []
    _installed_and_tried(rig, say)
    assert rig.boot() == "A"  # power cut during the trial: the firmware forgot the request
    rows = [passed("everything", "the running kiosk answered")]
    decision = selftest.decide(rig.context(), rows, rig.card.slots())
    assert decision.action == "confirmed"
    assert "never passed its trial boot" in decision.message
    assert rig.card.slots().state("B") == "bad" and rig.card.slots().committed() == "A"


def test_a_bundle_signed_by_another_key_is_refused_and_nothing_is_written(rig: Rig) -> None:
    stranger_cert, stranger_key = _pki(rig.root, "stranger")
    bundle = rig.bundle("6.6.6", cert=stranger_cert, key=stranger_key)
    before = rig.card.autoboot.read_bytes()
    say: list[str] = []
    assert selftest.update(rig.context(), bundle, rig.card.slots(), say=say.append) == 1
    assert "rauc refused the bundle" in say[-1]
    assert rig.slot_b.read_bytes() == b"\0" * SLOT_SIZE
    assert rig.card.autoboot.read_bytes() == before
    assert not any(a[0] == "systemctl" for a in rig.recorded)


def test_no_second_update_is_installed_over_the_only_good_slot_during_a_trial(rig: Rig) -> None:
    say: list[str] = []
    _installed_and_tried(rig, say)
    bundle = rig.bundle("2.0.1")
    before = rig.recorded.copy()
    assert selftest.update(rig.context(), bundle, rig.card.slots(), say=say.append) == 1
    assert "unproven update" in say[-1]
    assert rig.recorded == before  # rauc was not even asked
    # and RAUC itself, asked directly, is stopped by the backend before it writes slot A
    done = rig.rauc("install", str(bundle))
    assert done.returncode != 0
    assert rig.slot_a.read_bytes() == b"\0" * SLOT_SIZE


def test_the_shipped_rauc_config_loads_and_takes_only_verity_bundles(rig: Rig) -> None:
    """firmware/rauc/system.conf, read by the real RAUC: our backend, our slots, and plain
    bundles (whose image could be swapped after the signature check) refused."""
    shipped = Path(__file__).resolve().parents[2] / "firmware" / "rauc" / "system.conf"
    conf = rig.root / "shipped.conf"
    conf.write_text(shipped.read_text().replace("/var/lib/rauc", str(rig.root / "rauc-shipped")))
    for fmt, ok in (("verity", True), ("plain", False)):
        bundle = rig.bundle(f"3.0.0-{fmt}", fmt=fmt)
        done = subprocess.run(
            ["rauc", f"--conf={conf}", f"--keyring={rig.release_cert}", "info", str(bundle)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode == 0) is ok, done.stdout + done.stderr
        if not ok:
            assert "Bundle format 'plain' not allowed" in done.stdout + done.stderr
    text = shipped.read_text()
    assert "bootloader=custom" in text
    assert "bootloader-custom-backend=/opt/kiosk/bin/kiosk-bootslots" in text
    from daemon.bootslots import PARTITIONS

    for name, part in PARTITIONS.items():
        idx = "0" if name == "A" else "1"
        assert f"[slot.boot.{idx}]\ndevice=/dev/mmcblk0p{part}\n" in text
        assert (
            f"[slot.rootfs.{idx}]\ndevice=/dev/mmcblk0p{part + 3}\ntype=ext4\nbootname={name}"
            in text
        )


def test_an_update_installed_now_waits_to_reboot_until_nobody_is_checking_in(rig: Rig) -> None:
    """Installed at any time (--no-reboot); the trial reboot (--reboot-only) is refused while
    the health report says someone is mid-check-in, and goes ahead once they have finished."""
    from daemon import health

    ctx = rig.context()
    ctx.cfg.device.data_dir.mkdir(parents=True, exist_ok=True)
    report = ctx.cfg.device.data_dir / health.FILE
    say: list[str] = []
    bundle = rig.bundle("2.1.0")
    assert selftest.update(ctx, bundle, rig.card.slots(), reboot=False, say=say.append) == 0
    assert rig.card.slots().primary() == "B" and rig.card.slots().committed() == "A"
    assert not any(a[0] == "systemctl" for a in rig.recorded)
    health.write(report, {"at": time.time(), "busy": True})
    assert selftest.reboot_into_trial(ctx, rig.card.slots(), max_wait_s=0.5, say=say.append) == 1
    assert "someone has been checking in" in say[-1]
    assert not any(a[0] == "systemctl" for a in rig.recorded)
    assert rig.card.slots().read().trying is None  # no trial was started
    health.write(report, {"at": time.time(), "busy": False})
    assert selftest.reboot_into_trial(ctx, rig.card.slots(), say=say.append) == 0
    assert rig.recorded[-1] == ["systemctl", "reboot", "0 tryboot"]
    assert rig.boot(tryboot=True) == "B"


def test_the_install_shows_raucs_own_progress_to_100_percent(rig: Rig) -> None:
    import io

    from daemon.kioskctl.progress import Progress

    screen = io.StringIO()
    bar = Progress("install", 100, stream=screen, enabled=True, delay_s=0.0)
    say: list[str] = []
    code = selftest.update(rig.context(), rig.bundle("2.2.0"), rig.card.slots(), reboot=False,
                           say=say.append, progress=bar)  # fmt: skip
    assert code == 0, say
    drawn = screen.getvalue()
    assert "install [" in drawn and drawn.rstrip().endswith("100/100 100%")
    assert bar.done == 100
