"""A receipt printer in memory, for the demo and tests: keeps every slip (its lines and its
rendered image), and can run out of paper or jam on demand.

May import: the standard library, ``drivers.printer``.
"""

from __future__ import annotations

import threading

from PIL import Image

from drivers.printer.interface import Paper, PaperOut, PrinterError, PrinterSettings, Receipt
from drivers.printer.render import render


class SimulatedPrinter:
    def __init__(self, settings: PrinterSettings | None = None) -> None:
        self.settings = settings or PrinterSettings(backend="simulated")
        self.printed: list[tuple[Receipt, Image.Image]] = []
        self.paper_state = Paper.OK
        self.jammed = False
        self._lock = threading.Lock()

    def paper(self) -> Paper:
        return self.paper_state

    def print(self, receipt: Receipt) -> None:
        if self.paper_state is Paper.OUT:
            raise PaperOut("the receipt printer is out of paper; fit a new roll")
        if self.jammed:
            raise PrinterError("the receipt printer jammed; open it and clear the paper")
        image = render(receipt, self.settings.width_dots)
        with self._lock:
            self.printed.append((receipt, image))

    def close(self) -> None:
        return None
