"""Notice wall-clock jumps (NTP stepping a Pi that booted without an RTC, a bad manual set)
and say so in the chain with a ``clock_step`` record, so the server can re-base times.

Records stay ordered by ``seq`` whatever the wall clock does; the jump is only recorded.

May import: the standard library, ``daemon.clock``.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.clock import Clock, rfc3339

#: a difference between wall and monotonic progress larger than this is a step, not drift
STEP_THRESHOLD_S = 2.0


@dataclass(frozen=True, slots=True)
class ClockStep:
    delta_s: float
    before: str
    after: str
    synced: bool

    def detail(self) -> dict[str, object]:
        return {
            "delta_s": round(self.delta_s, 3),
            "before": self.before,
            "after": self.after,
            "synced": self.synced,
        }


class ClockWatch:
    """Compare wall-clock progress with monotonic progress between calls to :meth:`check`."""

    def __init__(self, clock: Clock, threshold_s: float = STEP_THRESHOLD_S) -> None:
        self.clock = clock
        self.threshold_s = threshold_s
        self._wall = clock.wall()
        self._mono = clock.monotonic_ns()

    def check(self) -> ClockStep | None:
        wall, mono = self.clock.wall(), self.clock.monotonic_ns()
        expected = self._wall + (mono - self._mono) / 1e9
        delta = wall - expected
        step = None
        if abs(delta) > self.threshold_s:
            step = ClockStep(delta, rfc3339(expected), rfc3339(wall), self.clock.synced())
        self._wall, self._mono = wall, mono
        return step
