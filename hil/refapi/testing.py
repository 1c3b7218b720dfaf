"""Helpers for tests and the demo that talk to the reference API: a synthetic device that signs
records and requests, an in-process app (httpx.ASGITransport, no socket), and pytest fixtures
for the real server over TLS.

Import the fixtures into a ``conftest.py`` with
``from hil.refapi.testing import refapi_server  # noqa: F401``.

May import: ``daemon`` (records, keys, reqauth), ``hil.refapi``, httpx, pytest (fixtures only).
All data made here is synthetic.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.keys import SoftwareKey, generate, public_pem
from daemon.records import GENESIS, b64url, record_hash, sign_record, uuid7
from daemon.reqauth import sign_request
from daemon.roster import dob_hmac
from hil.refapi.app import Faults, Settings, create_app
from hil.refapi.server import RefApi
from hil.refapi.storage import SqliteStorage, Storage

_serial = itertools.count(1)


@dataclass
class SimDevice:
    """A synthetic kiosk: a software key, a chain of records it signs, signed requests.

    ``clock`` gives Unix seconds for the request signatures (inject a fake one to test skew).
    Not thread-safe.
    """

    device: str = field(default_factory=lambda: f"kiosk-t{next(_serial):04d}")
    alg: str = "ES256"
    clock: Callable[[], float] = time.time
    key: SoftwareKey = field(init=False)
    seq: int = 0
    head: str = GENESIS

    def __post_init__(self) -> None:
        self.key = SoftwareKey(generate(self.alg))  # type: ignore[arg-type]

    @property
    def public_pem(self) -> str:
        return public_pem(self.key.public_key())

    def enrol_body(self, code: str) -> dict[str, str]:
        return {
            "code": code,
            "device_id": self.device,
            "alg": self.alg,
            "public_key_pem": self.public_pem,
        }

    def payload(self, seq: int, prev: str, **fields: Any) -> dict[str, Any]:
        """A schema-valid v1 payload at ``seq`` linking to ``prev`` (synthetic person ref)."""
        p: dict[str, Any] = {
            "v": 1,
            "id": uuid7(),
            "device": self.device,
            "seq": seq,
            "prev": prev,
            "type": "checkin",
            "at": "2026-11-23T09:15:02.123Z",
            "clock": {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001",
                      "mono_ns": seq * 1_000_000},
            "person": f"CR-{seq:06d}",
            "flags": [],
            "app": "0.1.0",
        }  # fmt: skip
        p.update(fields)
        return p

    def next_record(self, **fields: Any) -> str:
        """Sign the next record of this device's chain and advance the head."""
        compact = sign_record(self.payload(self.seq + 1, self.head, **fields), self.key)
        self.seq += 1
        self.head = record_hash(compact)
        return compact

    def records(self, n: int, **fields: Any) -> list[str]:
        return [self.next_record(**fields) for _ in range(n)]

    def rotate(self, new_key: SoftwareKey | None = None, **detail: Any) -> str:
        """Sign a ``key_rotation`` record (as ``kioskctl provision --force`` does) with the
        current key, naming ``new_key`` (a fresh one by default), then sign everything after
        it with the new key. ``detail`` overrides fields of the record's detail. Returns the
        rotation record."""
        new = new_key or SoftwareKey(generate(self.alg))  # type: ignore[arg-type]
        new_pem, old_pem = public_pem(new.public_key()), self.public_pem
        fields = {
            "new_alg": new.alg,
            "new_public_key_pem": new_pem,
            "new_key_id": b64url(hashlib.sha256(new_pem.encode()).digest())[:16],
            "old_key_id": b64url(hashlib.sha256(old_pem.encode()).digest())[:16],
        }
        compact = self.next_record(type="key_rotation", person=None, detail=fields | detail)
        self.key, self.alg = new, new.alg
        return compact

    def auth(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """The ``Authorization`` header for one request."""
        return {
            "Authorization": sign_request(self.key, self.device, method, path, body, self.clock())
        }


#: the DOB salt of the rosters :func:`roster_doc` makes
ROSTER_SALT = bytes(range(16))


def roster_doc(
    *people: str | dict[str, Any],
    office: str = "test-office",
    generated_at: str = "2026-11-23T08:00:00Z",
) -> dict[str, Any]:
    """A roster the kiosk takes whole (docs/api.md), of synthetic people: each a case
    reference or a partial entry (``ref`` and whatever the test needs), completed with the
    HMAC of a made-up date of birth (1990-01-01, salt :data:`ROSTER_SALT`)."""
    mac = base64.b64encode(dob_hmac(ROSTER_SALT, dt.date(1990, 1, 1))).decode()
    entries = [{"ref": p} if isinstance(p, str) else dict(p) for p in people]
    return {
        "office": office,
        "generated_at": generated_at,
        "dob_salt": base64.b64encode(ROSTER_SALT).decode(),
        "people": [{"dob_hmac": mac} | entry for entry in entries],
    }


@dataclass
class InProcess:
    """The app over httpx.ASGITransport on its own database (no socket, no TLS)."""

    settings: Settings
    client: httpx.AsyncClient

    @property
    def storage(self) -> Storage:
        return self.settings.storage

    def where(self) -> list[str]:
        """The kiosk-refapi arguments naming this app's database."""
        dsn = getattr(self.storage, "dsn", None)
        if dsn:
            return ["--database", str(dsn)]
        return ["--data", str(self.storage.path.parent)]  # type: ignore[attr-defined]

    async def enrol(self, dev: SimDevice) -> None:
        code = secrets.token_urlsafe(12)
        self.storage.add_code(code, self.settings.clock() + 60)
        r = await self.client.post("/v1/enrol", json=dev.enrol_body(code))
        assert r.status_code == 201, r.text

    async def push(
        self, dev: SimDevice, records: list[str], key: str | None = None
    ) -> httpx.Response:
        path = f"/v1/devices/{dev.device}/records"
        body = httpx.Request("POST", "http://x", json={"records": records}).content
        headers = dev.auth("POST", path, body) | {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(path, content=body, headers=headers)


def in_process(
    folder: Path,
    *,
    admin_token: str | None = "test-admin-token",  # noqa: S107 - loopback test app
    clock: Callable[[], float] | None = None,
    faults: bool = False,
    storage: Storage | None = None,
    simulated_expected: bool = False,
) -> InProcess:
    """Build the app on a fresh database in ``folder`` (or on ``storage``, e.g. a
    PostgreSQL one); close ``.client`` and ``.storage`` when done (or use the
    ``refapi_inprocess`` fixture)."""
    settings = Settings(
        storage=storage if storage is not None else SqliteStorage(folder / "refapi.sqlite3"),
        admin_token=admin_token,
        seal_public_key="",
        faults=Faults(enabled=faults),
        simulated_expected=simulated_expected,
    )
    if clock is not None:
        settings.clock = clock
    transport = httpx.ASGITransport(app=create_app(settings))
    return InProcess(settings, httpx.AsyncClient(transport=transport, base_url="http://refapi"))


@pytest.fixture
def refapi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefApi]:
    """A real reference API (uvicorn, HTTPS, fault injection allowed) in a subprocess on a
    free loopback port; ``.url``, ``.ca``, ``.admin_token``, ``.stop()``/``.start()``."""
    api = RefApi(tmp_path_factory.mktemp("refapi"), faults=True)
    api.start()
    try:
        yield api
    finally:
        api.stop()
