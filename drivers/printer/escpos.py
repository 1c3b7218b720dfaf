"""ESC/POS thermal receipt printers on the USB printer class device (/dev/usb/lp0): the slip
goes as one raster image (``GS v 0``), then a feed and a partial cut; the paper is asked with
``DLE EOT 4``. Written here rather than with python-escpos: the kiosk needs four commands and a
status byte, and the raster path is what prints Welsh.

May import: the standard library, ``drivers.printer``.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

from PIL import Image

from drivers.printer.interface import (
    Paper,
    PaperOut,
    PrinterError,
    PrinterNotAnswering,
    PrinterSettings,
    Receipt,
)
from drivers.printer.render import render

INIT = b"\x1b@"
FEED = b"\x1bd\x04"  # print and feed 4 lines, clear of the cutter
CUT = b"\x1dVB\x00"  # feed to the cutter and partial cut
PAPER_STATUS = b"\x10\x04\x04"  # DLE EOT 4: the roll sensors
NEAR_END = 0x0C  # bits 2 and 3
PAPER_END = 0x60  # bits 5 and 6
STATUS_FIXED = 0x12  # bits 1 and 4 are always set in a real status byte


def raster(image: Image.Image) -> bytes:
    """``GS v 0`` for a mode-"1" image: one bit a dot, 1 = black, rows of width/8 bytes."""
    if image.mode != "1" or image.width % 8:
        raise ValueError("raster needs a 1-bit image whose width is a multiple of 8")
    data = bytes(b ^ 0xFF for b in image.tobytes())  # Pillow: 1 = white; ESC/POS: 1 = black
    x_bytes, rows = image.width // 8, image.height
    header = b"\x1dv0\x00" + bytes((x_bytes & 0xFF, x_bytes >> 8, rows & 0xFF, rows >> 8))
    return header + data


def encode(receipt: Receipt, width_dots: int) -> bytes:
    """Everything sent to the printer for one slip."""
    return INIT + raster(render(receipt, width_dots)) + FEED + CUT


def parse_paper(status: int) -> Paper:
    if status & STATUS_FIXED != STATUS_FIXED:
        raise PrinterNotAnswering(f"the printer answered {status:#04x}, not a status byte")
    if status & PAPER_END:
        return Paper.OUT
    if status & NEAR_END:
        return Paper.LOW
    return Paper.OK


class EscPosPrinter:
    def __init__(self, settings: PrinterSettings) -> None:
        self.settings = settings
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.settings.device, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as exc:
                raise PrinterNotAnswering(
                    f"the receipt printer {self.settings.device} cannot be opened "
                    f"({exc.strerror}); check its USB cable and power"
                ) from exc
        return self._fd

    def paper(self) -> Paper:
        fd = self._open()
        try:
            os.write(fd, PAPER_STATUS)
            ready, _, _ = select.select([fd], [], [], self.settings.timeout_s)
            if not ready:
                raise PrinterNotAnswering("the receipt printer did not answer its status query")
            answer = os.read(fd, 1)
        except OSError as exc:
            self.close()
            raise PrinterNotAnswering(f"the receipt printer stopped ({exc.strerror})") from exc
        if not answer:
            raise PrinterNotAnswering("the receipt printer did not answer its status query")
        return parse_paper(answer[0])

    def print(self, receipt: Receipt) -> None:
        if self.paper() is Paper.OUT:
            raise PaperOut("the receipt printer is out of paper; fit a new roll")
        data = memoryview(encode(receipt, self.settings.width_dots))
        fd = self._open()
        deadline = time.monotonic() + self.settings.timeout_s
        try:
            while data:
                if time.monotonic() > deadline:
                    raise PrinterNotAnswering("the receipt printer stopped taking data")
                data = data[os.write(fd, data) :]
        except OSError as exc:
            self.close()
            raise PrinterError(f"the receipt printer failed mid-slip ({exc.strerror})") from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def open_escpos(settings: PrinterSettings) -> EscPosPrinter:
    if not Path(settings.device).exists():
        raise PrinterNotAnswering(
            f"no receipt printer at {settings.device}; check its USB cable, or set "
            '[printer] backend = "none"'
        )
    return EscPosPrinter(settings)
