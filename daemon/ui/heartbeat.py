"""The UI heartbeat: the page posts one about every :data:`BEAT_INTERVAL_S`; when none has
arrived for :attr:`HeartbeatWatch.stale_after_s`, the page (or the browser) has stopped
talking to the daemon and the kiosk shell should be restarted.

``kiosk-ui.service`` runs :mod:`daemon.ui.shell`, which asks ``/health`` and stops feeding
its systemd watchdog when the page is stale, so systemd restarts cage and Chromium. The
daemon may also call :meth:`HeartbeatWatch.stale` from its health probe.

May import: the standard library and daemon.clock.
"""

from __future__ import annotations

import threading

from daemon.clock import Clock

BEAT_INTERVAL_S = 2.0
STALE_AFTER_S = 15.0


class HeartbeatWatch:
    """Tracks the last page heartbeat on an injected monotonic clock. Thread-safe.

    Before the first beat the page counts as *starting*: it becomes stale only after
    ``start_grace_s`` (the browser needs time to launch), then after ``stale_after_s``
    without a beat.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        stale_after_s: float = STALE_AFTER_S,
        start_grace_s: float = 60.0,
    ) -> None:
        self._clock = clock
        self.stale_after_s = stale_after_s
        self.start_grace_s = start_grace_s
        self._lock = threading.Lock()
        self._created_ns = clock.monotonic_ns()
        self._last_ns: int | None = None
        self.beats = 0

    def beat(self) -> None:
        with self._lock:
            self._last_ns = self._clock.monotonic_ns()
            self.beats += 1

    def age_s(self) -> float | None:
        """Seconds since the last beat, or None if the page never beat."""
        with self._lock:
            last = self._last_ns
        if last is None:
            return None
        return (self._clock.monotonic_ns() - last) / 1e9

    def stale(self) -> bool:
        """True when the page should be considered dead and the shell restarted."""
        age = self.age_s()
        if age is None:
            waited = (self._clock.monotonic_ns() - self._created_ns) / 1e9
            return waited > self.start_grace_s
        return age > self.stale_after_s

    def reset(self) -> None:
        """Forget the page (after asking for a restart): the start grace applies again."""
        with self._lock:
            self._created_ns = self._clock.monotonic_ns()
            self._last_ns = None
