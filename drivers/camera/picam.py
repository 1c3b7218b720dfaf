"""The real camera: picamera2 (libcamera) on a Raspberry Pi, Camera Module 3.

picamera2 and libcamera are imported inside :meth:`Picamera2Source.open` only: importing this
module never touches the camera, and on a machine without them ``open`` raises
:class:`CameraNotFound` saying what to install. On Raspberry Pi OS they come from the OS
packages (``python3-picamera2``), not from PyPI, so the kiosk's venv is created with
``--system-site-packages`` (docs/drivers.md).

The stream is configured at the evidence resolution from settings (never the sensor's full
size), RGB; autofocus runs one cycle before each still where the module has it (Camera
Module 3 does; v2 does not). Blocking calls wait at most ``timeout_s``.

Not covered by the default tests (no camera here); the HIL rig (``--rig``) covers it.

May import: the standard library, Pillow, ``daemon.errors``, ``drivers.camera``; picamera2 and
libcamera inside ``open`` only.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from typing import Any

from PIL import Image

from drivers.camera.interface import CameraError, CameraNotFound, CameraSettings, CameraTimeout

log = logging.getLogger(__name__)


class Picamera2Source:
    """A :class:`FrameSource` over picamera2. Not thread-safe: :class:`GatedCamera`
    serialises calls."""

    def __init__(self, settings: CameraSettings) -> None:
        self._settings = settings
        self._cam: Any = None
        self._autofocus = False

    def open(self) -> None:
        s = self._settings
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraNotFound(
                "picamera2 is not importable: on Raspberry Pi OS install python3-picamera2 "
                "(apt) and create the kiosk venv with --system-site-packages; elsewhere use "
                '[camera] backend = "simulated" with allow_simulated.',
            ) from exc
        try:
            if len(Picamera2.global_camera_info()) <= s.camera_index:
                raise CameraNotFound(
                    "libcamera sees no camera; check the CSI ribbon cable and that the camera "
                    "is enabled (rpicam-hello --list-cameras), then restart the kiosk service.",
                )
            cam = Picamera2(s.camera_index)
            config = cam.create_still_configuration(
                main={"size": (s.width, s.height), "format": "RGB888"}, buffer_count=2
            )
            cam.configure(config)
            self._autofocus = s.autofocus and "AfMode" in cam.camera_controls
            if self._autofocus:
                # via importlib: libcamera has no stubs and is absent off the Pi
                controls = importlib.import_module("libcamera").controls
                cam.set_controls({"AfMode": controls.AfModeEnum.Auto})
            cam.start()
            self._cam = cam
        except CameraNotFound:
            raise
        except Exception as exc:  # picamera2 raises RuntimeError and plain exceptions
            raise CameraError(
                f"the camera could not be started ({exc.__class__.__name__}); another program "
                "may hold it. Stop it, or restart the kiosk service.",
                reason="camera_start",
            ) from exc

    def grab(self, timeout_s: float) -> Image.Image:
        cam = self._cam
        if cam is None:
            raise CameraError("the camera is not open", reason="camera_not_open")
        deadline = time.monotonic() + timeout_s
        try:
            if self._autofocus:
                focused = cam.autofocus_cycle(wait=False).get_result(timeout=timeout_s)
                if not focused:
                    log.info("autofocus did not lock; taking the still anyway")
            remaining = max(0.05, deadline - time.monotonic())
            image: Image.Image = cam.capture_image("main", wait=False).get_result(timeout=remaining)
        except TimeoutError as exc:  # concurrent.futures.TimeoutError from Job.get_result
            with contextlib.suppress(Exception):
                cam.cancel_all_and_flush()  # do not leave the stale job queued
            raise CameraTimeout(
                f"the camera gave no frame within {timeout_s} s; check the cable and restart "
                "the kiosk service. Check-ins continue without a photo meanwhile.",
            ) from exc
        except Exception as exc:
            raise CameraError(
                f"the camera failed during a capture ({exc.__class__.__name__}); restart the "
                "kiosk service.",
            ) from exc
        return image

    def grab_preview(self, timeout_s: float) -> Image.Image:
        """The same stream without the autofocus cycle: a QR code held up to the camera is
        read from a frame in continuous focus mode; a still would wait for a focus lock."""
        cam = self._cam
        if cam is None:
            raise CameraError("the camera is not open", reason="camera_not_open")
        try:
            image: Image.Image = cam.capture_image("main", wait=False).get_result(timeout=timeout_s)
        except TimeoutError as exc:
            with contextlib.suppress(Exception):
                cam.cancel_all_and_flush()
            raise CameraTimeout(f"the camera gave no preview frame within {timeout_s} s") from exc
        except Exception as exc:
            raise CameraError(
                f"the camera failed during a preview ({exc.__class__.__name__}); restart the "
                "kiosk service.",
            ) from exc
        return image

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
