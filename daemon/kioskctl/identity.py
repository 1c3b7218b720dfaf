"""The device's identity on disk, as ``kioskctl provision`` leaves it.

- the signing key (``device.key_path``, PEM, 0600) and the roster key beside it;
- ``<data_dir>/enrolment.json``: the device id, the API it enrolled with, the enrolled public
  key, and the public keys it had before (so old records still verify after a rotation).

The file holds public material only. May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import DeviceKeyError
from daemon.keys import write_private_file

ENROLMENT_FILE = "enrolment.json"


@dataclass(frozen=True, slots=True)
class Enrolment:
    device: str
    api_url: str
    alg: str
    public_key_pem: str
    enrolled_at: float
    #: public keys (PEM) this device signed with before, oldest first
    previous_public_keys: list[str] = field(default_factory=list)
    #: False when the API still holds an older key (rotation pending on the server side)
    api_confirmed: bool = True

    def all_public_pems(self) -> list[str]:
        return [*self.previous_public_keys, self.public_key_pem]


def enrolment_path(data_dir: Path) -> Path:
    return data_dir / ENROLMENT_FILE


def load_enrolment(data_dir: Path) -> Enrolment | None:
    """The recorded enrolment, or None when the device was never provisioned.

    Raises :class:`DeviceKeyError` when the file exists but cannot be read."""
    path = enrolment_path(data_dir)
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise DeviceKeyError(
            f"permission denied reading {path}: run kioskctl as root (sudo) or as the kiosk user",
            reason="key_access",
        ) from exc
    except (OSError, ValueError) as exc:
        raise DeviceKeyError(
            f"{path} is unreadable ({exc.__class__.__name__}); re-provision the device with "
            "`kioskctl provision --force` and a new enrolment code.",
            reason="enrolment_file",
        ) from exc
    try:
        return Enrolment(**raw)
    except TypeError as exc:
        raise DeviceKeyError(
            f"{path} is not an enrolment record; re-provision with `kioskctl provision --force`.",
            reason="enrolment_file",
        ) from exc


def save_enrolment(data_dir: Path, enrolment: Enrolment) -> None:
    """Write atomically (temp, fsync, rename); mode 0644 (public material only)."""
    path = enrolment_path(data_dir)
    write_private_file(path, json.dumps(asdict(enrolment), indent=2).encode())
    os.chmod(path, 0o644)
