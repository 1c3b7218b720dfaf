"""Fixtures for the reference API tests: the app in process (fast) and the real server."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.sealing import PHOTO_INFO, public_from_private, seal
from hil.pki import Pki
from hil.refapi.pgserver import PostgresUnavailable, TempPostgres
from hil.refapi.pgstore import PostgresStorage
from hil.refapi.storage import Storage
from hil.refapi.testing import InProcess, SimDevice, in_process
from hil.refapi.testing import refapi_server as refapi_server  # re-exported fixture


async def stored_photo(api: InProcess, dev: SimDevice, pki: Pki, jpeg: bytes) -> str:
    """Seal ``jpeg`` to ``pki``'s sealing key and upload it as ``dev``; return its sha256."""
    blob = seal(jpeg, public_from_private(pki.seal_key.read_bytes()), PHOTO_INFO)
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/v1/blobs/{sha}"
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.status_code == 201
    return sha


def open_photo_args(api: InProcess, sha: str) -> list[str]:
    """``kiosk-refapi open-photo`` for ``sha``, by a synthetic operator, for an audit."""
    return ["open-photo", *api.where(), "--sha", sha, "--operator", "staff-042",
            "--purpose", "audit"]  # fmt: skip


class FakeClock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    """One throwaway PostgreSQL server for the session (each test gets its own database)."""
    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL backend not tested here: {exc}")
    try:
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
def pg_dsn(postgres: TempPostgres) -> Iterator[str]:
    name = f"refapi_{next(_databases)}"
    dsn = postgres.create_database(name)
    try:
        yield dsn
    finally:
        postgres.drop_database(name)


# Every test of the API through the in-process app runs on both backends: the contract is the
# backend's, not SQLite's.
@pytest.fixture(params=["sqlite", "postgres"])
async def api(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[InProcess]:
    storage: Storage | None = None
    if request.param == "postgres":
        storage = PostgresStorage(request.getfixturevalue("pg_dsn"))
    ip = in_process(tmp_path, clock=clock, faults=True, storage=storage)
    try:
        yield ip
    finally:
        await ip.client.aclose()
        ip.storage.close()


@pytest.fixture
async def dev(api: InProcess, clock: FakeClock) -> SimDevice:
    d = SimDevice(clock=clock)
    await api.enrol(d)
    return d
