"""A kiosk whose device key is on a PKCS#11 token (SoftHSM2), provisioned, diagnosed, re-keyed
and synced with kioskctl against the real reference API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from daemon.keys import public_pem
from daemon.outbox import Outbox
from daemon.records import verify_record
from daemon.tokenkey import NEXT_SUFFIX, OLD_SUFFIX, TokenKeyBackend
from hil.fingerprint import SensorEmulator
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args
from tests.softhsm import needs_softhsm, new_token

pytestmark = needs_softhsm


@pytest.fixture
def token_kiosk(api: RefApi, tmp_path: Path, softhsm_conf: Path) -> tuple[Kiosk, TokenKeyBackend]:
    token = new_token(softhsm_conf, tmp_path)
    config = tmp_path / "etc" / "kiosk.toml"
    config.parent.mkdir(parents=True)
    config.write_text(  # what the engineer adds before provisioning (docs/keys.md)
        f'[hardware_key]\nmodule = "{token.module}"\ntoken = "{token.token}"\n'
        f'pin_file = "{token.pin_file}"\n'
    )
    with SensorEmulator("R503", time_scale=0, seed=3) as emu:
        kiosk = Kiosk(tmp_path, config, api, emu, FakeClock(wall=time.time(), synced=True))
        code, out, err = kiosk.run(*provision_args(api, tmp_path, f"kiosk-hsm-{token.token}"))
        assert code == 0, err
        assert f"key token {token.token!r}" in out
        yield kiosk, token


def _outbox(kiosk: Kiosk, token: TokenKeyBackend) -> Outbox:
    cfg = kiosk.cfg
    return Outbox(cfg.device.data_dir, device=cfg.device.id, key=token.load(), clock=kiosk.clock)


def test_provision_puts_the_key_on_the_token_and_enrols_it(
    token_kiosk: tuple[Kiosk, TokenKeyBackend], api: RefApi
) -> None:
    kiosk, token = token_kiosk
    cfg = kiosk.cfg
    assert not cfg.device.key_path.exists()  # no key file on the SD card
    key = token.load()
    stored = api.storage().device(cfg.device.id)
    assert stored is not None and stored.public_pem.strip() == public_pem(key.public_key()).strip()
    with _outbox(kiosk, token) as outbox:
        [(_seq, _state, compact)] = list(outbox.all_compact())
    assert verify_record(compact, key.public_key()).type == "enrolment"
    _code, out, _err = kiosk.run("doctor")
    assert "on the hardware key" in out and "a test signature verifies" in out, out
    assert "matches the key enrolled" in out, out


def test_rotation_on_the_token_is_signed_by_the_old_key_and_synced(
    token_kiosk: tuple[Kiosk, TokenKeyBackend], api: RefApi
) -> None:
    kiosk, token = token_kiosk
    old = token.load().public_key()
    code, out, err = kiosk.run(*provision_args(api, kiosk.folder, kiosk.cfg.device.id), "--force")
    assert code == 0, err
    assert "key_rotation record written at seq 2" in out
    new = token.load().public_key()
    assert public_pem(new) != public_pem(old)
    session = token._open()
    try:  # exactly one key pair is left on the token, under the configured label
        for label in ("device" + NEXT_SUFFIX, "device" + OLD_SUFFIX):
            assert token._token_key(session, label) is None, label
    finally:
        session.close()
    with _outbox(kiosk, token) as outbox:
        compacts = {seq: c for seq, _s, c in outbox.all_compact()}
        outbox.append("boot", {})  # signed on the token with the new key
    rotation = verify_record(compacts[2], old)
    assert rotation.payload["detail"]["new_public_key_pem"] == public_pem(new)
    code, out, _err = kiosk.run("outbox", "verify")
    assert code == 0 and "1 key rotation" in out, out
    code, out, err = kiosk.run("sync")
    assert code == 0, err + out
    store = api.storage()
    try:
        held = [c for _d, _s, c in store.export(kiosk.cfg.device.id)]
    finally:
        store.close()
    assert len(held) == 3  # enrolment, key_rotation, boot: none parked
    assert verify_record(held[2], new).type == "boot"
