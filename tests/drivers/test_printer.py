"""The receipt printer: the ESC/POS bytes a real thermal printer receives, over a real pty
standing in for /dev/usb/lp0 (status query answered the way printers answer it), the raster
that carries Welsh letters, and the failures a lobby printer has."""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.printer import (
    Paper,
    PaperOut,
    PrinterNotAnswering,
    PrinterSettings,
    Receipt,
    open_printer,
)
from drivers.printer.escpos import CUT, FEED, INIT, PAPER_STATUS, encode, parse_paper, raster
from drivers.printer.render import render

SLIP = Receipt((("title", "Probation check-in"), ("big", "7K2M-9QXD"), ("text", "Room 2")))


def test_a_slip_is_init_one_raster_image_feed_and_cut() -> None:
    data = encode(SLIP, 384)
    assert data.startswith(INIT + b"\x1dv0\x00") and data.endswith(FEED + CUT)
    x_bytes = data[6] | data[7] << 8
    rows = data[8] | data[9] << 8
    assert x_bytes == 48  # 384 dots, 58 mm paper
    assert len(data) == len(INIT) + 8 + x_bytes * rows + len(FEED) + len(CUT)
    pixels = data[10 : 10 + x_bytes * rows]
    inked = [any(pixels[r * x_bytes : (r + 1) * x_bytes]) for r in range(rows)]
    assert sum(inked) > 40 and not inked[0]  # text rows in black, a clean margin on top
    with pytest.raises(ValueError, match="multiple of 8"):
        raster(render(SLIP, 384).crop((0, 0, 383, 10)))


def test_welsh_letters_print_as_themselves() -> None:
    plain = render(Receipt((("text", "Dwr y cwm"),)), 384)
    accented = render(Receipt((("text", "Dŵr y cŵm"),)), 384)
    assert plain.size == accented.size and plain.tobytes() != accented.tobytes()
    long = render(Receipt((("text", "gair " * 40),)), 384)
    assert long.width == 384 and long.height > plain.height * 4  # wraps, never runs off


def test_a_web_address_longer_than_the_paper_is_wide_wraps_and_keeps_every_letter() -> None:
    """The privacy notice's address on a 58 mm slip: no spaces to break at, so it breaks
    inside; nothing runs off the paper and no letter is lost."""
    from PIL import Image, ImageDraw

    from drivers.printer.render import MARGIN, _font, _wrap

    address = "https://www.gov.uk/government/publications/probation-privacy-notice"
    text = f"How we use your information: {address}"
    draw = ImageDraw.Draw(Image.new("1", (1, 1)))
    width = 384 - 2 * MARGIN
    lines = _wrap(draw, text, _font("small"), width)
    assert len(lines) >= 3
    assert all(draw.textlength(line, font=_font("small")) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert _wrap(draw, "Keep this slip.", _font("small"), width) == ["Keep this slip."]


@pytest.mark.parametrize(
    ("status", "paper"), [(0x12, Paper.OK), (0x1E, Paper.LOW), (0x72, Paper.OUT)]
)
def test_the_roll_sensors_are_read_from_the_status_byte(status: int, paper: Paper) -> None:
    assert parse_paper(status) is paper


class FakeLp:
    """The printer end of a pty: answers DLE EOT 4 with ``status`` and keeps the rest."""

    def __init__(self, status: int | None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = Path(os.ttyname(slave))
        self._slave = slave
        self.status = status
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(self.master, 65536)
            pending += chunk
            while PAPER_STATUS in pending:
                before, _, pending = pending.partition(PAPER_STATUS)
                self.received += before
                if self.status is not None:
                    os.write(self.master, bytes([self.status]))
            if not pending.endswith(PAPER_STATUS[:1]) and not pending.endswith(PAPER_STATUS[:2]):
                self.received += pending
                pending = b""

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def lp() -> Iterator[FakeLp]:
    fake = FakeLp(0x12)
    yield fake
    fake.close()


def test_a_slip_reaches_the_printer_byte_for_byte(lp: FakeLp) -> None:
    printer = open_printer(PrinterSettings(backend="escpos", device=lp.path, timeout_s=1.0))
    assert printer is not None and printer.paper() is Paper.OK
    printer.print(SLIP)
    expected = encode(SLIP, 384)
    deadline = threading.Event()
    for _ in range(100):
        if len(lp.received) >= len(expected):
            break
        deadline.wait(0.02)
    printer.close()
    assert bytes(lp.received) == expected


def test_out_of_paper_prints_nothing_and_says_fit_a_roll(lp: FakeLp) -> None:
    lp.status = 0x72
    printer = open_printer(PrinterSettings(backend="escpos", device=lp.path, timeout_s=1.0))
    assert printer is not None
    with pytest.raises(PaperOut, match="fit a new roll"):
        printer.print(SLIP)
    printer.close()
    assert bytes(lp.received) == b""  # only the status query went


@pytest.mark.parametrize(("status", "says"), [(None, "did not answer"), (0x00, "not a status")])
def test_a_printer_that_does_not_answer_is_a_clear_error(status: int | None, says: str) -> None:
    fake = FakeLp(status)
    try:
        printer = open_printer(PrinterSettings(backend="escpos", device=fake.path, timeout_s=0.5))
        assert printer is not None
        with pytest.raises(PrinterNotAnswering, match=says):
            printer.print(SLIP)
        printer.close()
    finally:
        fake.close()


def test_no_printer_configured_or_none_plugged_in(tmp_path: Path) -> None:
    assert open_printer(PrinterSettings()) is None  # the default: the kiosk has none
    with pytest.raises(PrinterNotAnswering, match="check its USB cable"):
        open_printer(PrinterSettings(backend="escpos", device=tmp_path / "lp0"))
    with pytest.raises(ValueError, match="384 \\(58 mm\\) or 576"):
        PrinterSettings(width_dots=100)
