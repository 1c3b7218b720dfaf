"""Fixtures for the fingerprint tests: emulators on an in-memory link or a pty, fast settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.fingerprint import FingerprintSettings
from hil.fingerprint import SensorEmulator


def fast_settings(**overrides: object) -> FingerprintSettings:
    """Settings with short waits, for an emulator running with time_scale 0."""
    base: dict[str, object] = {
        "backend": "emulator",
        "baud": 57600,
        "reply_timeout_s": 0.3,
        "finger_timeout_s": 0.3,
        "poll_interval_s": 0.005,
        "recover_timeout_s": 2.0,
    }
    base.update(overrides)
    return FingerprintSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def emulator() -> Iterator[SensorEmulator]:
    with SensorEmulator("R503", time_scale=0, seed=7) as emu:
        yield emu


@pytest.fixture
def pty_emulator(tmp_path: Path) -> Iterator[tuple[SensorEmulator, str]]:
    with SensorEmulator("R307", time_scale=0, seed=7) as emu:
        yield emu, emu.start_pty(tmp_path / "ttyFP0")
