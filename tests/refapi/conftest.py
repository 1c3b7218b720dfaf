"""Fixtures for the reference API tests: the app in process (fast) and the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hil.refapi.testing import InProcess, SimDevice, in_process
from hil.refapi.testing import refapi_server as refapi_server  # re-exported fixture


class FakeClock:
    """Unix seconds that move only when a test says so."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcess]:
    ip = in_process(tmp_path, clock=clock, faults=True)
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
