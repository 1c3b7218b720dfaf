"""The optional receipt printer: a slip with the attendance reference and the next
appointment, for people who leave with paper rather than memory.

May import: the standard library, Pillow, ``daemon.errors``.
"""

from __future__ import annotations

from drivers.printer.interface import (
    Paper,
    PaperOut,
    PrinterError,
    PrinterNotAnswering,
    PrinterSettings,
    Receipt,
    ReceiptPrinter,
)

__all__ = [
    "Paper",
    "PaperOut",
    "PrinterError",
    "PrinterNotAnswering",
    "PrinterSettings",
    "Receipt",
    "ReceiptPrinter",
    "open_printer",
]


def open_printer(settings: PrinterSettings) -> ReceiptPrinter | None:
    """The configured printer, or None when the kiosk has none. Raises PrinterError when one
    is configured but cannot be reached (the kiosk runs on without it)."""
    if settings.backend == "none":
        return None
    if settings.backend == "simulated":
        from drivers.printer.simulated import SimulatedPrinter

        return SimulatedPrinter(settings)
    from drivers.printer.escpos import open_escpos

    return open_escpos(settings)
