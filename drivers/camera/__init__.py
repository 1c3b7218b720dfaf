"""The kiosk camera: evidence stills with a quality gate; picamera2 or synthetic frames.

:func:`open_camera` is the one factory the composition root calls. Importing this package
never imports picamera2.
"""

from __future__ import annotations

from drivers.camera.gated import GatedCamera
from drivers.camera.interface import (
    Camera,
    CameraError,
    CameraNotFound,
    CameraSettings,
    CameraTimeout,
    FrameSource,
    Photo,
    QualityVerdict,
)
from drivers.camera.quality import assess
from drivers.camera.synthetic import Shot, SyntheticCamera


def open_camera(settings: CameraSettings) -> GatedCamera:
    """Build and open the camera named by ``settings.backend``.

    Raises CameraNotFound (no camera / no picamera2) or CameraError; close it with
    ``close()`` or use it as a context manager.
    """
    source: FrameSource
    if settings.backend == "simulated":
        source = SyntheticCamera(settings.width, settings.height)
    else:
        from drivers.camera.picam import Picamera2Source

        source = Picamera2Source(settings)
    camera = GatedCamera(source, settings)
    camera.open()
    return camera


def camera_sim(camera: GatedCamera) -> SyntheticCamera:
    """The test-control side of a simulated camera (``script``, ``unplug``, ``plug_in``)."""
    if not isinstance(camera.source, SyntheticCamera):
        raise CameraError("this camera is not simulated", reason="camera_not_simulated")
    return camera.source


__all__ = [
    "Camera",
    "CameraError",
    "CameraNotFound",
    "CameraSettings",
    "CameraTimeout",
    "GatedCamera",
    "Photo",
    "QualityVerdict",
    "Shot",
    "SyntheticCamera",
    "assess",
    "camera_sim",
    "open_camera",
]
