"""Shared by the camera tests: the simulated camera, opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.camera import CameraSettings, GatedCamera, open_camera

SIM = CameraSettings(backend="simulated")


@pytest.fixture
def camera() -> Iterator[GatedCamera]:
    with open_camera(SIM) as cam:
        yield cam
