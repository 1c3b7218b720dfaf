"""``kioskctl provision``: give a kiosk its identity and enrol it with the central API.

Order, chosen so that a refusal leaves nothing changed:

1. build and validate the configuration (existing file updated, or a new one);
2. refuse if a device key exists, unless ``force``;
3. make the new signing key (in memory; or, with ``[hardware_key]``, on the token under
   ``<label>.next``: see daemon/tokenkey.py) and the roster key (in memory);
4. enrol them with the API using the one-time code (TLS verified against ``--ca`` or the
   configured bundle). A refused code or an unreachable API stops here, with nothing written;
5. with ``force`` and a readable old key: append a ``key_rotation`` record, signed by the OLD
   key and naming the new public key, to the outbox (the chain continues through it);
6. write the keys (0600, atomic; a token's new pair takes the key's label instead), the API's
   CA, the configuration and ``enrolment.json``; a fresh device's first record is an
   ``enrolment`` record signed by the new key.

A rotation the API answers with 409 (it still holds the old key) is kept: the API switches to
the new key when it accepts the ``key_rotation`` record, which the old key signed (the
enrolment call can never change a device's key; ``api_confirmed`` is false in enrolment.json).
Stop kiosk.service and kiosk-sync.service before rotating.

Blocking: one HTTPS request (``api.timeout_s``). May import: ``daemon.*``, ``httpx``.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from daemon.clock import Clock, SystemClock
from daemon.config import ApiConfig, DeviceConfig, check_api_files, check_ca_bundle, parse_config
from daemon.errors import (
    ApiProtocolError,
    ApiUnreachable,
    ConfigError,
    DeviceKeyError,
    KioskError,
    TlsError,
    UsageError,
)
from daemon.keys import (
    Alg,
    PrivateKey,
    SigningKey,
    SoftwareKey,
    generate,
    public_pem,
    write_private_file,
)
from daemon.kioskctl import apiclient
from daemon.kioskctl.identity import Enrolment, load_enrolment, save_enrolment
from daemon.kioskctl.tomlout import write_config
from daemon.outbox import Outbox
from daemon.records import b64url
from daemon.sealing import public_bytes, public_from_b64, public_to_b64, roster_key_path
from daemon.tokenkey import TokenKeyBackend, key_backend

log = logging.getLogger(__name__)
CA_FILE = "api-ca.pem"


class EnrolmentRefused(KioskError):
    reason = "enrolment_refused"


@dataclass(frozen=True, slots=True)
class Provisioned:
    device: str
    config_path: Path
    #: where the device key is: a file, or a key on a hardware token
    key_home: str
    rotated: bool
    #: seq of the key_rotation record, when one was written
    rotation_seq: int | None
    #: False when the API still holds the previous key (it switches on the rotation record)
    api_confirmed: bool
    warnings: tuple[str, ...] = ()


def _key_fingerprint(pem: str) -> str:
    return b64url(hashlib.sha256(pem.encode()).digest())[:16]


def _enrol(
    api: ApiConfig, ca: Path | None, device: str, code: str, key: SigningKey, roster_pub: bytes
) -> tuple[int, dict[str, Any]]:
    body = {
        "code": code,
        "device_id": device,
        "alg": key.alg,
        "public_key_pem": public_pem(key.public_key()),
        "roster_public_key": public_to_b64(roster_pub),
    }
    try:
        with apiclient.client(replace(api, ca_bundle=ca)) as http:
            response = apiclient.request(http, "POST", "/v1/enrol", json=body)
            answer = apiclient.json_object(response) if response.is_success else {}
    except (apiclient.SlowAnswer, apiclient.BadAnswer) as exc:
        raise type(exc)(
            f"the API at {api.url} {exc.what}. Nothing was changed on this kiosk. Check that "
            "--api-url is the central API (not a proxy or login page) and retry; if the code "
            "is then refused, ask the central team for a new one"
        ) from exc
    except httpx.ConnectError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise TlsError(
                "the API's certificate is not trusted by the CA bundle given; pass the right "
                "bundle with --ca, or run `kioskctl doctor` to see why",
            ) from exc
        raise ApiUnreachable(
            f"cannot reach the API at {api.url}; check the network and the URL, then retry"
        ) from exc
    except httpx.HTTPError as exc:
        raise ApiUnreachable(
            f"the API at {api.url} did not answer ({exc.__class__.__name__}); retry"
        ) from exc
    return response.status_code, answer


def _check_seal_key(seal_key: str, url: str, device: str) -> None:
    """The kiosk seals every photo to this key and will not start without a usable one, so a
    bad key stops provisioning before anything is written (re-provisioning would only fetch
    it again)."""
    try:
        if not seal_key:
            raise DeviceKeyError("no key", reason="seal_key")
        public_from_b64(seal_key)
    except DeviceKeyError as exc:
        raise EnrolmentRefused(
            f"the API at {url} enrolled {device} but handed out "
            f"{'no photo-sealing key' if not seal_key else 'a photo-sealing key that is not valid'}"
            ", so this kiosk could not seal photos or start. Nothing was written on this kiosk. "
            f"Ask the central team to fix the API's sealing key and to retire {device}, then "
            "provision again with a new code.",
            reason="seal_key",
        ) from exc


def _check_api_ca(ca_pem: object, url: str, device: str) -> str:
    """The API's CA bundle from the enrolment answer: none, or PEM certificates. Anything else
    would be written as api.ca_bundle and stop kiosk-sync (78), so it stops provisioning
    before anything is written."""
    if ca_pem in (None, ""):
        return ""
    try:
        if not isinstance(ca_pem, str) or not x509.load_pem_x509_certificates(ca_pem.encode()):
            raise ValueError("no certificate")
    except ValueError as exc:
        raise EnrolmentRefused(
            f"the API at {url} enrolled {device} but handed out a CA bundle that is not a PEM "
            "certificate. Nothing was written on this kiosk. Ask the central team to fix the "
            f"API's CA bundle and to retire {device}, then provision again with a new code.",
            reason="api_ca",
        ) from exc
    return ca_pem


def _check_arguments(device_id: str | None, api_url: str | None, ca: Path | None) -> None:
    """Refuse a wrong argument before anything is read or made (UsageError: exit 2)."""
    if device_id is not None:
        try:
            DeviceConfig(id=device_id)
        except ValueError as exc:
            raise UsageError(
                f"--device-id {device_id!r} is not allowed: use 1-64 of A-Z a-z 0-9 . _ -, "
                "e.g. kiosk-0042 (the kiosk's asset id). Nothing was changed."
            ) from exc
    if api_url is not None:
        parts = urlsplit(api_url)
        if parts.scheme != "https" or not parts.hostname:
            raise UsageError(
                f"--api-url {api_url} is not allowed: the central API must be an https:// "
                "address. Check-in records, photos and this enrolment code cross the network, "
                "and the kiosk only talks to an API whose certificate it can verify. Ask the "
                "central team for the https address. Nothing was changed."
            )
    if ca is not None:
        try:
            check_ca_bundle(
                ca, key="--ca", fix="pass the CA bundle (PEM) the central team gave you"
            )
        except ConfigError as exc:
            raise UsageError(f"{exc.message}. Nothing was changed.") from exc


def _refuse_a_chain_it_cannot_continue(data_dir: Path, old: Any) -> None:
    """Refuse, before the enrolment code is spent, to provision into a data directory whose
    outbox holds records when no readable old key (``old``: the key backend, or None) can sign
    the ``key_rotation`` that carries the chain over. The new key's records would follow the
    old chain without a link: the API would refuse them as a fork and park the old ones (a
    lost key, or another kiosk's card: docs/kioskctl.md, "Swapping a unit")."""
    path = data_dir / Outbox.FILE
    if not path.exists():
        return
    if old is not None:
        try:
            old.load()
            return  # the rotation record links the chains
        except DeviceKeyError:
            pass
    with Outbox(data_dir, device="", key=None, clock=SystemClock()) as outbox:
        held = outbox.stats().last_seq
    if held == 0:
        return
    raise UsageError(
        f"{data_dir} holds an outbox whose chain reached seq {held}, made under a key this "
        "kiosk no longer has; provisioning into it would append records the API refuses. "
        f"Export its records first (`kioskctl outbox export --operator ID --purpose "
        f"maintenance --out FILE`, for `kiosk-refapi import`), then move the folder aside "
        f"(`mv {data_dir} {data_dir}.old`) and provision again. Nothing was changed."
    )


def provision(
    config_path: Path,
    *,
    code: str,
    clock: Clock,
    device_id: str | None = None,
    api_url: str | None = None,
    ca: Path | None = None,
    data_dir: Path | None = None,
    alg: Alg = "ES256",
    force: bool = False,
    allow_simulated: bool | None = None,
) -> Provisioned:
    """See the module docstring. Raises UsageError (a wrong argument), DeviceKeyError
    (identity exists without ``force``), EnrolmentRefused (bad code, device taken),
    ApiUnreachable, TlsError, ConfigError (the existing configuration file is wrong)."""
    _check_arguments(device_id, api_url, ca)
    table: dict[str, Any] = {}
    if config_path.exists():
        try:
            table = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{config_path} is not valid TOML ({exc}); fix it or move it aside, then run "
                "`kioskctl provision` again. Nothing was changed."
            ) from exc
    device_t = dict(table.get("device", {}))
    api_t = dict(table.get("api", {}))
    if device_id:
        device_t["id"] = device_id
    if data_dir:
        device_t["data_dir"] = str(data_dir)
    if allow_simulated is not None:
        device_t["allow_simulated"] = allow_simulated
    device_t["key_alg"] = alg
    if api_url:
        api_t["url"] = api_url
    if not device_t.get("id"):
        raise UsageError(
            f"no device id: give --device-id, e.g. --device-id kiosk-0042 (it is kept in "
            f"{config_path}, so later runs need not repeat it). Nothing was changed."
        )
    if not api_t.get("url"):
        raise UsageError(
            "no central API address: give --api-url https://... as the central team gave it "
            f"(it is kept in {config_path}, so later runs need not repeat it). Nothing was "
            "changed."
        )
    table["device"], table["api"] = device_t, api_t
    cfg = parse_config(table)  # raises ConfigError naming what is missing or wrong
    # the files the configuration already names must be right too (--ca replaces the bundle)
    check_api_files(replace(cfg.api, ca_bundle=None) if ca is not None else cfg.api)
    key_path = cfg.device.key_path
    backend = key_backend(cfg.device, cfg.hardware_key)
    token = backend if isinstance(backend, TokenKeyBackend) else None
    existing = backend.exists()
    if existing and not force:
        raise DeviceKeyError(
            f"this kiosk already has an identity ({backend.describe()}); refusing to replace "
            "it. To rotate it deliberately (a key_rotation record is kept), run again with "
            "--force.",
            reason="identity_exists",
        )
    _refuse_a_chain_it_cannot_continue(cfg.device.data_dir, backend if existing else None)
    # the new key: in memory until the switch, or on the token under '<label>.next'
    new_private: PrivateKey | None = None
    new_key: SigningKey
    if token is None:
        new_private = generate(alg)
        new_key = SoftwareKey(new_private)
    else:
        new_key = token.generate_next()
    new_pem = public_pem(new_key.public_key())
    roster_private = x25519.X25519PrivateKey.generate()
    roster_pub = public_bytes(roster_private.public_key())

    status, answer = _enrol(cfg.api, ca or cfg.api.ca_bundle, cfg.device.id, code, new_key,
                            roster_pub)  # fmt: skip
    api_confirmed = True
    warnings: list[str] = []
    if status == 403:
        raise EnrolmentRefused(
            "the API refused the enrolment code (wrong, used or expired); ask the central "
            "team for a new one. Nothing was changed on this kiosk.",
            reason="enrolment_code",
        )
    if status == 409 and existing:
        api_confirmed = False
        warnings.append(
            "the API still holds this device's previous key (it answered the enrolment with "
            "409, as it does for every rotation); it switches to the new one when it accepts "
            "the key_rotation record (run `kioskctl sync`)"
        )
    elif status == 409:
        raise EnrolmentRefused(
            f"the API already has a device {cfg.device.id} with another key; choose another "
            "device id, or ask the central team to retire the old one. Nothing was changed.",
            reason="already_enrolled",
        )
    elif status not in (200, 201):
        raise ApiProtocolError(
            f"the API answered the enrolment with {status}; nothing was changed. Retry, or "
            "run `kioskctl doctor` to check the API."
        )
    seal_key = str(answer.get("seal_public_key", "")) if status != 409 else ""
    ca_pem = ""
    if status != 409:
        _check_seal_key(seal_key, cfg.api.url, cfg.device.id)
        ca_pem = _check_api_ca(answer.get("api_ca_pem"), cfg.api.url, cfg.device.id)

    rotation_seq: int | None = None
    previous: list[str] = []
    old = load_enrolment(cfg.device.data_dir)
    if old is not None:
        previous = old.all_public_pems()
    outbox_kw: dict[str, Any] = {
        "device": cfg.device.id,
        "clock": clock,
        "min_free_bytes": cfg.outbox.min_free_mb * 1024 * 1024,
    }
    if existing:
        try:
            old_key = backend.load()
        except DeviceKeyError as exc:
            warnings.append(
                f"the previous key could not be read ({exc.reason}), so no key_rotation record "
                "could be signed: tell the central team this device was re-keyed"
            )
        else:
            old_pem = public_pem(old_key.public_key())
            if old_pem not in previous:
                previous.append(old_pem)
            with Outbox(cfg.device.data_dir, key=old_key, **outbox_kw) as outbox:
                record = outbox.append(
                    "key_rotation",
                    {
                        "detail": {
                            "new_alg": alg,
                            "new_public_key_pem": new_pem,
                            "new_key_id": _key_fingerprint(new_pem),
                            "old_key_id": _key_fingerprint(old_pem),
                        }
                    },
                )
            rotation_seq = record.seq
            log.info("key_rotation record written at seq %d", rotation_seq)

    # --- the switch: keys, CA, configuration, enrolment record ------------------------------
    if new_private is not None:
        write_private_file(
            key_path,
            new_private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    elif token is not None:
        token.promote_next()
    write_private_file(
        roster_key_path(key_path),
        roster_private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    if ca_pem:
        ca_path = config_path.parent / CA_FILE
        # public, and kiosk-sync must read it whatever root's umask: 0644, atomically
        write_private_file(ca_path, ca_pem.encode(), mode=0o644)
        api_t["ca_bundle"] = str(ca_path)
    elif ca is not None:
        api_t["ca_bundle"] = str(ca)
    if seal_key:
        api_t["seal_public_key"] = seal_key
    table["api"] = api_t
    write_config(config_path, table)
    if rotation_seq is None:
        with Outbox(cfg.device.data_dir, key=new_key, **outbox_kw) as outbox:
            outbox.append(
                "enrolment",
                {"detail": {"alg": alg, "key_id": _key_fingerprint(new_pem), "forced": force}},
            )
    previous = [p for p in previous if p.strip() != new_pem.strip()]
    save_enrolment(
        cfg.device.data_dir,
        Enrolment(
            device=cfg.device.id,
            api_url=cfg.api.url,
            alg=alg,
            public_key_pem=new_pem,
            enrolled_at=clock.wall(),
            previous_public_keys=previous,
            api_confirmed=api_confirmed,
        ),
    )
    return Provisioned(
        device=cfg.device.id,
        config_path=config_path,
        key_home=backend.describe(),
        rotated=existing,
        rotation_seq=rotation_seq,
        api_confirmed=api_confirmed,
        warnings=tuple(warnings),
    )
