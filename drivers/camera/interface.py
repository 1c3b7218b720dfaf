"""What the kiosk sees of its camera, in kiosk words: ``capture_still() -> Photo``.

May import: the standard library, Pillow (types only), ``daemon.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from daemon.errors import DeviceNotFound, DeviceTimeout, DriverError

if TYPE_CHECKING:
    from PIL import Image


class CameraError(DriverError):
    """The camera failed in a way that is neither "missing" nor "too slow"."""

    reason = "camera"


class CameraNotFound(DeviceNotFound):
    reason = "camera_not_found"


class CameraTimeout(DeviceTimeout):
    reason = "camera_timeout"


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    """The cheap photo-quality gate's verdict.

    ``mean_luma``: mean grey level, 0-255. ``sharpness``: variance of the Laplacian of the
    downscaled grey image (higher is sharper). ``problems``: ``too_dark``, ``too_bright``,
    ``blurry`` (empty when ``ok``).
    """

    ok: bool
    mean_luma: float
    sharpness: float
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Photo:
    """One evidence photo. ``attempts`` is 2 when the first shot failed the gate and was
    retaken; ``flagged`` is True when the photo kept still fails it (the check-in carries
    on and the record says so, for an officer to look at)."""

    jpeg: bytes
    width: int
    height: int
    quality: QualityVerdict
    attempts: int

    @property
    def flagged(self) -> bool:
        return not self.quality.ok


class Camera(Protocol):
    def open(self) -> None:
        """Start the camera. Raises CameraNotFound, CameraError."""
        ...

    def capture_still(self) -> Photo:
        """Take an evidence photo (retaking once if the first fails the quality gate).
        Blocks up to twice ``settings.timeout_s``. Raises CameraTimeout, CameraNotFound,
        CameraError. Safe to call from several threads (calls are serialised)."""
        ...

    def read_code(self) -> str | None:
        """Look at one preview frame (no autofocus cycle; the frame is not kept) and return the
        text of a QR code in it, or None. Raises CameraTimeout, CameraNotFound, CameraError."""
        ...

    def probe(self) -> None:
        """Take one preview frame and check it is a picture, not a blank (the boot self-test).
        The frame is not kept. Raises CameraError, CameraTimeout, CameraNotFound."""
        ...

    def close(self) -> None:
        """Stop the camera; idempotent."""
        ...


class FrameSource(Protocol):
    """The seam under the camera: something that yields RGB frames at evidence resolution."""

    def open(self) -> None: ...

    def grab(self, timeout_s: float) -> Image.Image:
        """One RGB frame of the configured size. Raises CameraTimeout after ``timeout_s``."""
        ...

    def grab_preview(self, timeout_s: float) -> Image.Image:
        """A frame for looking at, not for evidence: no autofocus cycle, and any size (the
        caller scales it). Scripted still-shot failures do not apply. Raises CameraTimeout,
        CameraNotFound."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CameraSettings:
    """The ``[camera]`` configuration section.

    ``backend``: ``picamera2`` on a Pi; ``simulated`` gives synthetic frames (refused by the
    composition root unless ``allow_simulated``). ``width``/``height``: evidence resolution in
    pixels (not the sensor's full size). ``jpeg_quality``: 1-95. ``timeout_s``: per shot,
    including autofocus. ``min_luma``/``max_luma``: accepted mean grey level (0-255).
    ``min_sharpness``: least accepted Laplacian variance at ``gate_width`` pixels wide.
    ``read_qr``: while the identify screen waits for a case reference, look for the QR code on
    an appointment letter (``qr_interval_s`` between looks; ``qr_width`` pixels wide).
    """

    backend: Literal["picamera2", "simulated"] = "picamera2"
    width: int = 1280
    height: int = 960
    jpeg_quality: int = 85
    timeout_s: float = 3.0
    autofocus: bool = True
    camera_index: int = 0
    min_luma: float = 50.0
    max_luma: float = 205.0
    min_sharpness: float = 60.0
    gate_width: int = 320
    read_qr: bool = True
    qr_interval_s: float = 0.3
    qr_width: int = 640

    def __post_init__(self) -> None:
        if not (320 <= self.width <= 4608 and 240 <= self.height <= 3456):
            raise ValueError(
                f"width: {self.width}x{self.height} is not allowed: use 320..4608 x 240..3456"
            )
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality: {self.jpeg_quality} is not allowed: use 1..95")
        if not 0 < self.timeout_s <= 30:
            raise ValueError(f"timeout_s: {self.timeout_s} is not allowed: use (0, 30]")
        if not 0 <= self.min_luma < self.max_luma <= 255:
            raise ValueError("min_luma: need 0 <= min_luma < max_luma <= 255")
        if self.min_sharpness < 0:
            raise ValueError(f"min_sharpness: {self.min_sharpness} must be >= 0")
        if not 64 <= self.gate_width <= self.width:
            raise ValueError(f"gate_width: {self.gate_width} is not allowed: use 64..width")
        if not 0.05 <= self.qr_interval_s <= 5:
            raise ValueError(f"qr_interval_s: {self.qr_interval_s} is not allowed: use 0.05..5")
        if not 160 <= self.qr_width <= 4608:  # a narrower frame is decoded as it is
            raise ValueError(f"qr_width: {self.qr_width} is not allowed: use 160..4608")
