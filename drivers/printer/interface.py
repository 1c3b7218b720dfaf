"""What the kiosk sees of its receipt printer, in kiosk words: print this slip, how is the
paper. Optional hardware: a kiosk without one works the same, and a printer that fails never
holds up a check-in (the screen shows the same reference).

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from daemon.errors import DriverError


class PrinterError(DriverError):
    reason = "printer"


class PaperOut(PrinterError):
    reason = "printer_paper_out"


class PrinterNotAnswering(PrinterError):
    reason = "printer_not_answering"


class Paper(enum.Enum):
    OK = "ok"
    LOW = "low"  # the near-end sensor: a roll to fit soon
    OUT = "out"


@dataclass(frozen=True, slots=True)
class Receipt:
    """A slip, top to bottom: (style, text) lines; styles ``title``, ``big``, ``text``,
    ``small``. Text only: no logo, no barcode, nothing about the person but what they saw on
    the screen."""

    lines: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PrinterSettings:
    backend: Literal["none", "escpos", "simulated"] = "none"
    #: the USB printer class device (ESC/POS thermal printers)
    device: Path = Path("/dev/usb/lp0")
    #: printable width in dots: 384 for 58 mm paper, 576 for 80 mm (203 dpi)
    width_dots: int = 384
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.width_dots % 8 or not 256 <= self.width_dots <= 832:
            raise ValueError(
                f"width_dots = {self.width_dots} is not allowed: use 384 (58 mm) or 576 (80 mm)"
            )
        if not 0.5 <= self.timeout_s <= 60:
            raise ValueError(f"timeout_s = {self.timeout_s} is not allowed: use 0.5..60")


class ReceiptPrinter(Protocol):
    def print(self, receipt: Receipt) -> None:
        """Print and cut one slip. Raises PaperOut or PrinterError."""
        ...

    def paper(self) -> Paper:
        """The paper sensors. Raises PrinterNotAnswering."""
        ...

    def close(self) -> None: ...
