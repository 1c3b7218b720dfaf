"""The field engineer's swap of a dead unit for a spare (docs/kioskctl.md, SWAPPING A UNIT),
step by step against the real reference API: the old card's outbox read and synced by another
process on another machine (the first kiosk is gone), the old device retired, the spare
provisioned under the same id; and, when the old key is lost, the card's records exported and
imported at the API. Synthetic data only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from hil.refapi.__main__ import main as refapi
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args

WHO = ("--operator", "fe-0417", "--purpose", "audit")  # who exports, and why

ROOT = Path(__file__).resolve().parents[2]


def _kioskctl(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``kioskctl`` as the engineer runs it: its own process, on another machine."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "daemon.kioskctl", "--config", str(config), *argv],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip


def _unit_dies_with_unsent_check_ins(kiosk: Kiosk, n: int = 4) -> None:
    with kiosk.outbox() as ob:
        for i in range(n):
            blob = f"sealed photo {i} of {kiosk.cfg.device.id} (synthetic)".encode() * 30
            ob.append("checkin", {"person": f"CR-{900 + i:06d}"}, blob=blob)


def _mount_old_card(kiosk: Kiosk, at: Path) -> Path:
    """The old card read on the engineer's machine: its data folder copied (as if its data
    partition were mounted) under ``at``, and the short configuration the procedure writes:
    the device id, where the card's data is, the API and its CA."""
    cfg = kiosk.cfg
    shutil.copytree(cfg.device.data_dir, at / "data")
    assert cfg.api.ca_bundle is not None
    shutil.copy(cfg.api.ca_bundle, at / "api-ca.pem")
    (at / "card.toml").write_text(
        f'[device]\nid = "{cfg.device.id}"\ndata_dir = "{at / "data"}"\n\n'
        f'[api]\nurl = "{cfg.api.url}"\nca_bundle = "{at / "api-ca.pem"}"\n'
    )
    return at / "card.toml"


def _provision_spare(api: RefApi, folder: Path, device: str) -> tuple[int, str, str]:
    spare = Kiosk(folder, folder / "etc" / "kiosk.toml", api, None,  # type: ignore[arg-type]
                  FakeClock(wall=time.time(), synced=True))  # fmt: skip
    return spare.run(*provision_args(api, folder, device))


def test_swap_with_the_old_key_on_the_card(kiosk: Kiosk, api: RefApi, tmp_path: Path) -> None:
    device = kiosk.cfg.device.id
    _unit_dies_with_unsent_check_ins(kiosk)
    card = _mount_old_card(kiosk, tmp_path / "card")
    shutil.rmtree(kiosk.cfg.device.data_dir)  # the first kiosk is gone
    verify = _kioskctl(card, "outbox", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "5 records verified from genesis" in verify.stdout
    sync = _kioskctl(card, "sync")
    assert sync.returncode == 0, sync.stderr
    store = api.storage()
    try:
        assert store.last_seq(device) == 5 and store.gaps(device) == []
    finally:
        store.close()
    # the spare cannot take the id while the old device holds it
    code, _out, err = _provision_spare(api, tmp_path / "spare0", device)
    assert code == 1 and "already_enrolled" in err
    assert refapi(["retire", "--data", str(api.data), "--device", device, "--operator",
                   "fe-0417", "--reason", "unit dead, replaced by a spare"]) == 0  # fmt: skip
    code, out, err = _provision_spare(api, tmp_path / "spare", device)
    assert code == 0, err
    assert f"{device} provisioned" in out
    sync = _kioskctl(tmp_path / "spare" / "etc" / "kiosk.toml", "sync")
    assert sync.returncode == 0, sync.stderr
    store = api.storage()
    try:
        assert store.last_seq(device) == 1  # the spare's own chain
        assert store.last_seq(f"{device}~1") == 5  # the old unit's, every record kept
    finally:
        store.close()


def test_swap_when_the_old_key_is_lost(
    kiosk: Kiosk, api: RefApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = kiosk.cfg.device.id
    _unit_dies_with_unsent_check_ins(kiosk)
    card = _mount_old_card(kiosk, tmp_path / "card")
    (tmp_path / "card" / "data" / "device-key.pem").unlink()  # the key is gone
    sync = _kioskctl(card, "sync")
    assert sync.returncode != 0
    assert _kioskctl(card, "outbox", "verify").returncode == 0  # no key needed to read it
    export = _kioskctl(card, "outbox", "export", *WHO, "--out", str(tmp_path / "card.jws"))
    assert export.returncode == 0, export.stderr
    # no key to sign its own record: the export is logged beside the outbox instead
    assert "export-log.jsonl" in export.stderr and "unsigned" in export.stderr
    logged = json.loads((tmp_path / "card" / "data" / "export-log.jsonl").read_text())
    assert (logged["operator"], logged["purpose"], logged["action"]) == (
        "fe-0417", "audit", "export")  # fmt: skip
    assert refapi(["retire", "--data", str(api.data), "--device", device, "--operator",
                   "fe-0417", "--reason", "key lost with the unit"]) == 0  # fmt: skip
    code, _out, err = _provision_spare(api, tmp_path / "spare", device)
    assert code == 0, err
    capsys.readouterr()
    assert refapi(["import", "--data", str(api.data), "--device", device, "--operator",
                   "fe-0417", "--blobs", str(tmp_path / "card" / "data" / "blobs"),
                   str(tmp_path / "card.jws")]) == 0  # fmt: skip
    assert '"stored": 4' in capsys.readouterr().out  # the photos came with their records
    store = api.storage()
    try:
        assert store.last_seq(f"{device}~1") == 5 and store.gaps(f"{device}~1") == []
    finally:
        store.close()


def test_the_old_card_synced_after_retirement_is_refused_clearly_and_loses_nothing(
    kiosk: Kiosk, api: RefApi, tmp_path: Path
) -> None:
    device = kiosk.cfg.device.id
    _unit_dies_with_unsent_check_ins(kiosk, 2)
    card = _mount_old_card(kiosk, tmp_path / "card")
    assert refapi(["retire", "--data", str(api.data), "--device", device, "--operator",
                   "fe-0417", "--reason", "unit stolen"]) == 0  # fmt: skip
    sync = _kioskctl(card, "sync")
    assert sync.returncode == 1
    assert "[device_retired]" in sync.stderr and "kioskctl outbox export" in sync.stderr
    assert "Traceback" not in sync.stderr
    listing = _kioskctl(card, "outbox", "list")
    assert listing.stdout.count("pending") == 3  # nothing on the card was let go
    store = api.storage()
    try:
        assert store.count(f"{device}~1") == 0  # and nothing the retired key sent was stored
    finally:
        store.close()
