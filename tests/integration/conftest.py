"""A real reference API (uvicorn, HTTPS) on loopback, and an enrolled simulated device."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.config import ApiConfig
from daemon.keys import FileKeyBackend, SoftwareKey, public_pem
from daemon.outbox import Outbox
from hil.refapi.server import RefApi


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefApi]:
    ref = RefApi(tmp_path_factory.mktemp("refapi"), faults=True)
    ref.start()
    yield ref
    ref.stop()


@dataclass
class Device:
    id: str
    key: SoftwareKey
    outbox: Outbox
    api_config: ApiConfig


_n = 0


def enrol(api: RefApi, folder: Path, *, alg: str = "ES256") -> Device:
    global _n
    _n += 1
    device = f"kiosk-it{_n:03d}"
    key = FileKeyBackend(folder / "key.pem").create(alg)  # type: ignore[arg-type]
    r = httpx.post(
        api.url + "v1/enrol",
        json={"code": api.mint_code(), "device_id": device, "alg": alg,
              "public_key_pem": public_pem(key.public_key())},
        verify=ssl.create_default_context(cafile=str(api.ca)),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    outbox = Outbox(folder / "data", device=device, key=key, clock=SystemClock()).open()
    cfg = ApiConfig(url=api.url, ca_bundle=api.ca, batch_size=50, backoff_base_s=0.01,
                    backoff_cap_s=0.05, timeout_s=5)  # fmt: skip
    return Device(device, key, outbox, cfg)


@pytest.fixture
def device(api: RefApi, tmp_path: Path) -> Iterator[Device]:
    d = enrol(api, tmp_path)
    yield d
    d.outbox.close()
