"""The page heartbeat decides when the kiosk shell is restarted."""

from __future__ import annotations

from daemon.clock import FakeClock
from daemon.ui.heartbeat import HeartbeatWatch


def test_a_page_that_stops_beating_becomes_stale() -> None:
    clock = FakeClock()
    watch = HeartbeatWatch(clock, stale_after_s=15, start_grace_s=60)
    watch.beat()
    clock.advance(14.9)
    assert not watch.stale()
    clock.advance(0.2)
    assert watch.stale()
    watch.beat()
    assert not watch.stale()
    assert watch.age_s() == 0.0


def test_a_browser_that_never_starts_is_stale_after_the_grace() -> None:
    clock = FakeClock()
    watch = HeartbeatWatch(clock, stale_after_s=15, start_grace_s=60)
    clock.advance(59)
    assert not watch.stale() and watch.age_s() is None
    clock.advance(2)
    assert watch.stale()
    watch.reset()
    assert not watch.stale()
