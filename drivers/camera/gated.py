"""The camera every backend shares: frames from a :class:`FrameSource`, the quality gate
(retake once, then carry on and flag), JPEG encoding, and QR codes read from preview frames.

May import: the standard library, Pillow, ``daemon.errors``, ``drivers.camera``.
"""

from __future__ import annotations

import io
import logging
import threading
from types import TracebackType

from PIL import Image, ImageStat

from drivers.camera.codes import read_qr
from drivers.camera.interface import CameraError, CameraSettings, FrameSource, Photo
from drivers.camera.quality import assess

log = logging.getLogger(__name__)

#: below this grey-level spread a frame is "blank" (a covered lens reads ~0-2; a lobby 20+)
BLANK_STDDEV = 4.0


class GatedCamera:
    """A :class:`Camera` over a frame source. Calls are serialised by a lock."""

    def __init__(self, source: FrameSource, settings: CameraSettings) -> None:
        self.source = source
        self.settings = settings
        self._lock = threading.Lock()
        self._open = False

    def open(self) -> None:
        with self._lock:
            if not self._open:
                self.source.open()
                self._open = True

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self.source.close()

    def __enter__(self) -> GatedCamera:
        self.open()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def capture_still(self) -> Photo:
        s = self.settings
        with self._lock:
            self._require_open()
            frame = self._grab()
            verdict = assess(frame, s)
            attempts = 1
            if not verdict.ok:
                log.info("photo failed the quality gate (%s); retaking", ",".join(verdict.problems))
                frame = self._grab()
                verdict = assess(frame, s)
                attempts = 2
                if not verdict.ok:
                    log.warning(
                        "retaken photo still fails the quality gate (%s); kept and flagged",
                        ",".join(verdict.problems),
                    )
        return Photo(self._encode(frame), frame.width, frame.height, verdict, attempts)

    def read_code(self) -> str | None:
        frame = self._preview(1.0)
        return read_qr(frame, max_width=self.settings.qr_width)  # decoded outside the lock

    def probe(self) -> None:
        """One preview frame, checked to look like a picture (the boot self-test's "camera
        frame"). The frame is not kept. Raises CameraError (reason ``camera_blank`` for a
        flat frame: lens covered, sensor dead, ribbon half in) or the source's error."""
        frame = self._preview(2.0)
        spread = ImageStat.Stat(frame.convert("L").reduce(4)).stddev[0]
        del frame
        if spread < BLANK_STDDEV:
            raise CameraError(
                "the camera gives a blank picture: check that nothing covers the lens and "
                "that the ribbon cable is fully in at both ends.",
                reason="camera_blank",
            )

    def _require_open(self) -> None:
        if not self._open:
            raise CameraError(
                "the camera is not open; this is a software fault: restart the kiosk service.",
                reason="camera_not_open",
            )

    def _preview(self, max_wait_s: float) -> Image.Image:
        """One preview frame (no autofocus cycle), taken under the lock."""
        with self._lock:
            self._require_open()
            return self.source.grab_preview(min(self.settings.timeout_s, max_wait_s))

    def _grab(self) -> Image.Image:
        frame = self.source.grab(self.settings.timeout_s)
        if frame.size != (self.settings.width, self.settings.height):
            frame = frame.resize((self.settings.width, self.settings.height))
        return frame if frame.mode == "RGB" else frame.convert("RGB")

    def _encode(self, frame: Image.Image) -> bytes:
        out = io.BytesIO()
        # no EXIF, no thumbnail: the record carries time and device; the JPEG carries pixels
        frame.save(out, format="JPEG", quality=self.settings.jpeg_quality)
        return out.getvalue()
