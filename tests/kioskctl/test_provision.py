"""``kioskctl provision`` against the real reference API."""

from __future__ import annotations

import stat
import time
from dataclasses import replace
from pathlib import Path

from daemon.clock import FakeClock
from daemon.keys import FileKeyBackend, public_pem
from daemon.kioskctl.identity import load_enrolment, save_enrolment
from daemon.records import decode_unverified, verify_record
from daemon.sealing import RosterKey, roster_key_path
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args


def test_provision_writes_identity_config_and_enrols(kiosk: Kiosk, api: RefApi) -> None:
    cfg = kiosk.cfg
    key_path = cfg.device.key_path
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(roster_key_path(key_path).stat().st_mode) == 0o600
    RosterKey.load(roster_key_path(key_path))
    # the API's CA and photo-sealing key came from the enrolment answer
    assert cfg.api.seal_public_key == api.pki.seal_public_b64()
    assert cfg.api.ca_bundle is not None
    assert cfg.api.ca_bundle.read_text() == api.ca.read_text()
    key = FileKeyBackend(key_path).load()
    stored = api.storage().device(cfg.device.id)
    assert stored is not None and stored.public_pem.strip() == public_pem(key.public_key()).strip()
    # the first record says the device was enrolled, signed by the new key
    with kiosk.outbox() as outbox:
        [(seq, _state, compact)] = list(outbox.all_compact())
    assert seq == 1
    assert verify_record(compact, key.public_key()).type == "enrolment"


def test_provision_refuses_to_replace_identity_without_force(kiosk: Kiosk, api: RefApi) -> None:
    before = kiosk.cfg.device.key_path.read_bytes()
    code, _out, err = kiosk.run(*provision_args(api, kiosk.folder, kiosk.cfg.device.id))
    assert code == 1
    assert "--force" in err and "already has an identity" in err
    assert kiosk.cfg.device.key_path.read_bytes() == before


def test_provision_force_rotates_key_with_record_signed_by_old_key(
    kiosk: Kiosk, api: RefApi
) -> None:
    old = FileKeyBackend(kiosk.cfg.device.key_path).load()
    code, out, err = kiosk.run(*provision_args(api, kiosk.folder, kiosk.cfg.device.id), "--force")
    assert code == 0, err
    assert "key_rotation record written at seq 2" in out
    new = FileKeyBackend(kiosk.cfg.device.key_path).load()
    assert public_pem(new.public_key()) != public_pem(old.public_key())
    with kiosk.outbox() as outbox:
        compacts = {seq: c for seq, _s, c in outbox.all_compact()}
        outbox.append("boot", {})  # later records are signed by the new key
    rotation = verify_record(compacts[2], old.public_key())  # signed by the OLD key
    assert rotation.type == "key_rotation"
    assert rotation.payload["detail"]["new_public_key_pem"] == public_pem(new.public_key())
    enrolment = load_enrolment(kiosk.cfg.device.data_dir)
    assert enrolment is not None
    assert enrolment.previous_public_keys == [public_pem(old.public_key())]
    # the reference API answers 409 to a second enrolment of the device: said, not hidden
    assert "previous key" in out and enrolment.api_confirmed is False
    code, out, _err = kiosk.run("outbox", "verify")
    assert code == 0
    assert "3 records verified from genesis" in out and "1 key rotation" in out


def test_provision_with_a_used_code_changes_nothing(api: RefApi, tmp_path: Path) -> None:
    code_ = api.mint_code()
    k = Kiosk(tmp_path, tmp_path / "kiosk.toml", api, None, FakeClock(wall=time.time()))  # type: ignore[arg-type]
    args = provision_args(api, tmp_path, "kiosk-ctl-used", code_)
    assert k.run(*args)[0] == 0
    args2 = provision_args(api, tmp_path / "other", "kiosk-ctl-used2", code_)
    k2 = Kiosk(tmp_path / "other", tmp_path / "other" / "kiosk.toml", api, None,  # type: ignore[arg-type]
               FakeClock(wall=time.time()))  # fmt: skip
    code, _out, err = k2.run(*args2)
    assert code == 1
    assert "ask the central team for a new one" in err and "Nothing was changed" in err
    assert not (tmp_path / "other" / "kiosk.toml").exists()
    assert not (tmp_path / "other" / "data" / "device-key.pem").exists()


def test_provision_refuses_an_outbox_its_new_key_could_not_continue(
    kiosk: Kiosk, api: RefApi
) -> None:
    """The key is lost but the card's outbox holds the old chain: a new key's records would
    follow it unlinked (a fork the API refuses). Refused before the code is spent."""
    with kiosk.outbox() as outbox:
        outbox.append("checkin", {"person": "CR-000321"})
    kiosk.cfg.device.key_path.unlink()
    code_ = api.mint_code()
    code, _out, err = kiosk.run(*provision_args(api, kiosk.folder, kiosk.cfg.device.id, code_))
    assert code == 2
    assert "reached seq 2" in err and "outbox export" in err and "Nothing was changed" in err
    assert not kiosk.cfg.device.key_path.exists()
    # the code was not spent: a fresh folder (the right way) takes it
    fresh = Kiosk(kiosk.folder / "fresh", kiosk.folder / "fresh" / "kiosk.toml", api, None,  # type: ignore[arg-type]
                  FakeClock(wall=time.time()))  # fmt: skip
    code, _out, err = fresh.run(*provision_args(api, kiosk.folder / "fresh", "kiosk-ctl-fresh",
                                                code_))  # fmt: skip
    assert code == 0, err


def test_first_record_chain_links_to_genesis(kiosk: Kiosk) -> None:
    with kiosk.outbox() as outbox:
        (_seq, _s, compact) = next(iter(outbox.all_compact()))
    _h, payload, _si, _sig = decode_unverified(compact)
    assert payload["prev"] == "A" * 43


def test_after_a_rotation_doctor_says_to_sync_and_sync_completes_it(
    kiosk: Kiosk, api: RefApi
) -> None:
    """Between the rotation and the API accepting its record, doctor must not send the
    engineer to rotate again; one `kioskctl sync` makes the API take the new key."""
    import json

    def api_row() -> dict[str, str]:
        _code, out, _err = kiosk.run("doctor", "--json", "--no-hardware")
        return next(c for c in json.loads(out)["checks"] if c["name"] == "api enrolment")

    code, _out, err = kiosk.run(*provision_args(api, kiosk.folder, kiosk.cfg.device.id), "--force")
    assert code == 0, err
    row = api_row()
    assert row["status"] == "warn" and "key_rotation" in row["detail"]
    assert "kioskctl sync" in row["fix"] and "--force" not in row["fix"]
    # a rotation the API never took, a week and more ago, is no longer excused: a real FAIL
    data_dir = kiosk.cfg.device.data_dir
    pending = load_enrolment(data_dir)
    assert pending is not None
    save_enrolment(data_dir, replace(pending, enrolled_at=pending.enrolled_at - 8 * 86400))
    assert api_row()["status"] == "fail"
    save_enrolment(data_dir, pending)
    code, out, err = kiosk.run("sync")
    assert code == 0, out + err
    assert api_row()["status"] == "pass"
    enrolment = load_enrolment(kiosk.cfg.device.data_dir)
    assert enrolment is not None and enrolment.api_confirmed  # a later refusal is a real FAIL
    stored = api.storage()
    try:
        device = stored.device(kiosk.cfg.device.id)
        new = FileKeyBackend(kiosk.cfg.device.key_path).load()
        assert device is not None and device.public_pem == public_pem(new.public_key())
    finally:
        stored.close()
