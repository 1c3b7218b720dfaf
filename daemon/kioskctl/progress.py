"""A tiny progress bar for long commands (export, bundle, sync now).

Drawn on stderr, and only when stderr is a terminal, so pipes, logs and ``--json`` output stay
clean. It appears only once the work has taken longer than ``delay_s`` (0.5 s by default), so
quick runs print nothing. Redraws are throttled to ten a second.

Threads: one thread per bar. May import: the standard library.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

WIDTH = 30


class Progress:
    """``total`` may be None when unknown (a counter is shown instead of a bar)."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._delay = delay_s
        self._now = monotonic
        self._start = monotonic()
        self._last_draw = -1.0
        self.drawn = 0  # how many times the bar was drawn (tests)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self._now()
        if not self._enabled or now - self._start < self._delay:
            return
        if self._last_draw >= 0 and now - self._last_draw < 0.1 and self.done != self.total:
            return
        self._last_draw = now
        self._draw()

    def _draw(self) -> None:
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * WIDTH)
            bar = "#" * filled + "-" * (WIDTH - filled)
            text = f"\r{self.label} [{bar}] {self.done}/{self.total} {frac * 100:3.0f}%"
        else:
            text = f"\r{self.label} {self.done}"
        self._stream.write(text)
        self._stream.flush()
        self.drawn += 1

    def close(self) -> None:
        """End the bar's line (only if anything was drawn)."""
        if self.drawn:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
