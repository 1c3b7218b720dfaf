"""The simulated camera: deterministic synthetic frames that look like a scene (a lobby wall,
a door, a notice board and a person's head and shoulders), with scripted failures.

The scene is rendered once per size and cached; each shot copies it and pastes the person
at a position derived from the shot number, so frames differ deterministically and cost about
a millisecond. Test control, in domain terms: :meth:`SyntheticCamera.script`, ``unplug``,
``plug_in``, ``hold_up_letter`` (a letter with a real QR code, tilted, in front of the person)
and ``put_letter_away``.

May import: the standard library, Pillow, ``drivers.camera`` (its QR writer: zxing-cpp).
"""

from __future__ import annotations

import collections
import enum
import functools
import threading

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from drivers.camera.codes import qr_image
from drivers.camera.interface import CameraNotFound, CameraTimeout


class Shot(enum.Enum):
    """What the next grab produces."""

    GOOD = "good"
    DARK = "dark"  # lights off / lens covered
    BRIGHT = "bright"  # sun through the window
    BLURRY = "blurry"  # out of focus / smeared lens
    TIMEOUT = "timeout"  # no frame within the timeout
    UNPLUGGED = "unplugged"  # the camera went away mid-session


@functools.lru_cache(maxsize=4)
def _scene(width: int, height: int) -> tuple[Image.Image, Image.Image, Image.Image]:
    """``(background, person, person_mask)`` at this size."""
    wall = Image.linear_gradient("L").resize((width, height)).point(lambda v: 90 + v // 3)
    bg = Image.merge("RGB", (wall, wall.point(lambda v: v - 8), wall.point(lambda v: v - 25)))
    d = ImageDraw.Draw(bg)
    u = width / 64  # one scene unit
    d.rectangle((0, int(height * 0.78), width, height), fill=(70, 62, 58))  # floor
    d.rectangle((int(44 * u), int(6 * u), int(58 * u), int(height * 0.78)), fill=(120, 84, 52))
    d.ellipse((int(55 * u), int(24 * u), int(56 * u), int(25 * u)), fill=(200, 190, 60))
    board = (int(4 * u), int(6 * u), int(20 * u), int(18 * u))  # notice board with "text"
    d.rectangle(board, fill=(235, 232, 220), outline=(30, 30, 30), width=max(1, int(u / 4)))
    line = max(2, int(u / 2))
    for i, y in enumerate(range(board[1] + 2 * line, board[3] - line, 2 * line)):
        d.rectangle((board[0] + line, y, board[2] - line * (2 + i % 4), y + line // 2), fill=0)
    for x in range(0, width, max(4, int(u * 2))):  # skirting-board tiles
        d.line((x, int(height * 0.78), x, height), fill=(40, 36, 34), width=1)
    pw, ph = int(24 * u), int(height * 0.72)
    person = Image.new("RGB", (pw, ph), (60, 70, 110))
    mask = Image.new("L", (pw, ph), 0)
    pd, md = ImageDraw.Draw(person), ImageDraw.Draw(mask)
    head = (int(7 * u), int(2 * u), int(17 * u), int(14 * u))
    body = (0, int(14 * u), pw, ph + int(8 * u))
    pd.ellipse(head, fill=(196, 150, 120))
    md.ellipse(head, fill=255)
    md.rounded_rectangle(body, radius=int(6 * u), fill=255)
    pd.ellipse((int(9 * u), int(6 * u), int(11 * u), int(8 * u)), fill=(30, 25, 20))  # eyes
    pd.ellipse((int(13 * u), int(6 * u), int(15 * u), int(8 * u)), fill=(30, 25, 20))
    pd.line((int(10 * u), int(11 * u), int(14 * u), int(11 * u)), fill=(120, 60, 60), width=2)
    for x in range(0, pw, max(3, int(u))):  # a striped jumper: texture for the focus measure
        pd.line((x, int(15 * u), x, ph), fill=(80, 92, 140), width=max(1, int(u / 3)))
    return bg, person, mask


def _frame(width: int, height: int, shot_no: int) -> Image.Image:
    bg, person, mask = _scene(width, height)
    frame = bg.copy()
    x = (width - person.width) // 2 + ((shot_no * 37) % 81 - 40) * width // 1280
    frame.paste(person, (x, height - person.height), mask)
    return frame


@functools.lru_cache(maxsize=8)
def _letter(text: str, width: int) -> tuple[Image.Image, Image.Image]:
    """``(letter, mask)``: an off-white sheet with the QR code of ``text`` and some lines of
    "print", tilted a little as a hand holds it, about a third of the frame wide."""
    sheet_w = width // 3
    sheet = Image.new("RGB", (sheet_w, sheet_w * 4 // 3), (238, 236, 228))
    d = ImageDraw.Draw(sheet)
    line = max(2, sheet_w // 60)
    for i, y in enumerate(range(line * 4, sheet_w // 3, line * 3)):  # the letter's "text"
        d.rectangle((line * 4, y, sheet_w - line * (6 + 3 * (i % 3)), y + line), fill=(60, 60, 60))
    code = qr_image(text, module_px=max(2, sheet_w // 60)).convert("RGB")
    side = sheet_w * 2 // 3
    code = code.resize((side, side), Image.Resampling.NEAREST)
    sheet.paste(code, ((sheet_w - side) // 2, sheet_w // 2))
    mask = Image.new("L", sheet.size, 255)
    return sheet.rotate(8, expand=True, resample=Image.Resampling.BILINEAR), mask.rotate(
        8, expand=True
    )


class SyntheticCamera:
    """A :class:`FrameSource` of synthetic frames. Thread-safe."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._lock = threading.Lock()
        self._script: collections.deque[Shot] = collections.deque()
        self._present = True
        self._open = False
        self._letter: str | None = None
        self._covered = False
        self.frames_taken = 0
        self.previews_taken = 0

    # --- test control ----------------------------------------------------------------------
    def script(self, shots: list[Shot]) -> None:
        """Queue what the next grabs produce; once the queue is empty, shots are GOOD."""
        with self._lock:
            self._script.extend(shots)

    def script_failures(self, shots: list[Shot]) -> None:
        """Alias of :meth:`script`, for readability in tests."""
        self.script(shots)

    def unplug(self) -> None:
        """The camera is not there: ``open`` and ``grab`` raise CameraNotFound."""
        with self._lock:
            self._present = False

    def plug_in(self) -> None:
        with self._lock:
            self._present = True

    def cover_lens(self, covered: bool = True) -> None:
        """Something covers the lens (tape, a sticker, a hand): every frame is black."""
        with self._lock:
            self._covered = covered

    def hold_up_letter(self, qr_text: str) -> None:
        """Someone holds a letter with a QR code of ``qr_text`` up to the camera; it is in
        every frame until :meth:`put_letter_away`."""
        _letter(qr_text, self.width)  # render now, not in a grab
        with self._lock:
            self._letter = qr_text

    def put_letter_away(self) -> None:
        with self._lock:
            self._letter = None

    # --- FrameSource -----------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if not self._present:
                raise _not_found()
            _scene(self.width, self.height)  # render (or reuse) the scene now, not mid-check-in
            self._open = True

    def close(self) -> None:
        with self._lock:
            self._open = False

    def grab(self, timeout_s: float) -> Image.Image:
        with self._lock:
            if not self._present:
                raise _not_found()
            shot = self._script.popleft() if self._script else Shot.GOOD
            self.frames_taken += 1
            n = self.frames_taken
            letter = self._letter
        if shot is Shot.TIMEOUT:
            raise CameraTimeout(
                f"the camera gave no frame within {timeout_s} s; check the camera cable, then "
                "restart the kiosk service. Check-ins continue without a photo meanwhile.",
            )
        if shot is Shot.UNPLUGGED:
            with self._lock:
                self._present = False
            raise _not_found()
        frame = self._compose(n, letter)
        if shot is Shot.DARK:
            return frame.point(lambda v: v // 6)
        if shot is Shot.BRIGHT:
            return ImageEnhance.Brightness(frame).enhance(3.0)
        if shot is Shot.BLURRY:
            return frame.filter(ImageFilter.BoxBlur(max(4, self.width // 120)))
        return frame

    def grab_preview(self, timeout_s: float) -> Image.Image:
        with self._lock:
            if not self._present:
                raise _not_found()
            self.previews_taken += 1
            n, letter = self.previews_taken, self._letter
        return self._compose(n, letter)

    def _covered_frame(self) -> Image.Image | None:
        with self._lock:
            covered = self._covered
        return Image.new("RGB", (self.width, self.height)) if covered else None

    def _compose(self, n: int, letter: str | None) -> Image.Image:
        black = self._covered_frame()
        if black is not None:
            return black
        frame = _frame(self.width, self.height, n)
        if letter is not None:
            sheet, mask = _letter(letter, self.width)
            frame.paste(sheet, ((self.width - sheet.width) // 2, self.height // 3), mask)
        return frame


def _not_found() -> CameraNotFound:
    return CameraNotFound(
        "no camera is connected; check the CSI ribbon cable (contacts facing the right way) "
        "and restart the kiosk service. Check-ins continue without a photo meanwhile.",
    )
