"""The device key on a PKCS#11 token (SoftHSM2, a real PKCS#11 library, standing in for the
ATECC608B or TPM of a deployed kiosk): records it signs verify with only its public key, the
private key cannot be read off the token, a rotation survives a power cut part-way through,
and every way it can be misconfigured says what to fix without showing the PIN."""

from __future__ import annotations

from pathlib import Path

import pytest
from jwcrypto import jwk, jws

from daemon.clock import FakeClock
from daemon.config import parse_config
from daemon.errors import ConfigError, DeviceKeyError
from daemon.keys import public_pem
from daemon.outbox import Outbox
from daemon.records import verify_chain
from daemon.tokenkey import NEXT_SUFFIX, OLD_SUFFIX, TokenKeyBackend, key_backend
from tests.core.helpers import synthetic_checkin
from tests.softhsm import MODULE, needs_softhsm, new_token

pytestmark = needs_softhsm


@pytest.fixture
def backend(softhsm_conf: Path, tmp_path: Path) -> TokenKeyBackend:
    return new_token(softhsm_conf, tmp_path)


def _provision(backend: TokenKeyBackend) -> None:
    backend.generate_next().close()  # the last session closed logs the process out
    backend.promote_next()


def test_records_signed_on_the_token_verify_with_only_the_public_key(
    backend: TokenKeyBackend, tmp_path: Path
) -> None:
    assert not backend.exists()
    _provision(backend)
    assert backend.exists()
    key = backend.load()
    with Outbox(tmp_path / "data", device="kiosk-hsm", key=key, clock=FakeClock()) as outbox:
        made = [outbox.append("checkin", synthetic_checkin(n)).compact for n in range(5)]
    assert [r.seq for r in verify_chain(made, key.public_key(), "kiosk-hsm")] == [1, 2, 3, 4, 5]
    # an independent JOSE library, given only the public key
    public = jwk.JWK.from_pem(public_pem(key.public_key()).encode())
    for compact in made:
        token = jws.JWS()
        token.deserialize(compact)
        token.verify(public, alg="ES256")


def test_the_private_key_never_leaves_the_token(backend: TokenKeyBackend) -> None:
    import pkcs11

    _provision(backend)
    key = backend.load()
    private = key._private  # the token's object handle, not key material
    assert private[pkcs11.Attribute.SENSITIVE] is True
    assert private[pkcs11.Attribute.EXTRACTABLE] is False
    with pytest.raises(pkcs11.PKCS11Error):
        private[pkcs11.Attribute.VALUE]


def test_rotation_switches_keys_and_a_power_cut_midway_is_finished_on_load(
    backend: TokenKeyBackend,
) -> None:
    _provision(backend)
    old = public_pem(backend.load().public_key())
    new = public_pem(backend.generate_next().public_key())
    assert new != old
    assert public_pem(backend.load().public_key()) == old  # not switched before promote
    # the power goes after the old key was set aside, before the new one took its label
    session = backend._open()
    backend._relabel(session, "device", "device" + OLD_SUFFIX)
    session.close()
    assert public_pem(backend.load().public_key()) == new
    session = backend._open()
    for label in ("device" + OLD_SUFFIX, "device" + NEXT_SUFFIX):
        assert backend._token_key(session, label) is None, label
    session.close()


def test_a_wrong_pin_is_refused_without_showing_it(backend: TokenKeyBackend) -> None:
    _provision(backend)
    backend.pin_file.write_text("999999\n")
    with pytest.raises(DeviceKeyError) as err:
        backend.load()
    assert "refused the PIN" in str(err.value) and "999999" not in str(err.value)


def test_a_pin_file_others_can_read_is_refused(backend: TokenKeyBackend) -> None:
    backend.pin_file.chmod(0o644)
    with pytest.raises(DeviceKeyError) as err:
        backend.load()
    assert err.value.reason == "key_permissions" and "chmod 600" in str(err.value)


def test_missing_pieces_say_what_to_do(backend: TokenKeyBackend, tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyError, match="kioskctl provision"):
        backend.load()  # token present, no key on it yet
    elsewhere = TokenKeyBackend(MODULE, "no-such-token", "device", backend.pin_file)
    with pytest.raises(DeviceKeyError, match="no token labelled"):
        elsewhere.load()
    no_lib = TokenKeyBackend(tmp_path / "missing.so", backend.token, "device", backend.pin_file)
    with pytest.raises(DeviceKeyError, match="does not exist"):
        no_lib.load()
    no_pin = TokenKeyBackend(MODULE, backend.token, "device", tmp_path / "absent-pin")
    with pytest.raises(DeviceKeyError, match="no PIN file") as missing:
        no_pin.load()
    # provision does not write the PIN file: the message must not send the engineer there
    assert "write the token's user PIN there" in missing.value.message
    assert "does not write it" in missing.value.message


def test_configuration_chooses_the_token_and_names_bad_keys(tmp_path: Path) -> None:
    base = {"device": {"id": "kiosk-hsm", "data_dir": str(tmp_path)}, "api": {"url": "https://a"}}
    cfg = parse_config({**base, "hardware_key": {"module": str(MODULE), "token": "kiosk"}})
    chosen = key_backend(cfg.device, cfg.hardware_key)
    assert isinstance(chosen, TokenKeyBackend) and chosen.token == "kiosk"
    plain = parse_config(base)
    assert key_backend(plain.device, plain.hardware_key).describe().startswith("file ")
    with pytest.raises(ConfigError, match=r"unknown key hardware_key\.pin"):
        parse_config({**base, "hardware_key": {"module": str(MODULE), "pin": "1234"}})
    with pytest.raises(ConfigError, match="hardware keys sign ES256"):
        parse_config(
            {
                **base,
                "device": {**base["device"], "key_alg": "EdDSA"},
                "hardware_key": {"module": str(MODULE)},
            }
        )
