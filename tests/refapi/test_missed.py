"""When no kiosk of an office said it was running, for a missed appointment's task
(hil/refapi/missed.py, not_running)."""

from __future__ import annotations

import datetime as dt

from hil.refapi.missed import HEARTBEAT_GAP_S, not_running

T = 1_795_000_000.0
GAP = HEARTBEAT_GAP_S


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_kiosk_beating_every_minute_has_no_gaps() -> None:
    beats = [T + 60 * m for m in range(-10, 130)]
    assert not_running(beats, T, T + 7200) == []


def test_a_silence_longer_than_the_gap_is_reported_clipped_to_the_window() -> None:
    beats = [T + 60 * m for m in range(0, 30)] + [T + 60 * m for m in range(90, 130)]
    assert not_running(beats, T, T + 7200) == [{"from": _iso(T + 29 * 60), "to": _iso(T + 90 * 60)}]
    # no heartbeat at all: the whole window
    assert not_running([], T, T + 7200) == [{"from": _iso(T), "to": _iso(T + 7200)}]
    # running until before the window, never after: from the window's start
    assert not_running([T - 600, T - 300], T, T + 3600) == [{"from": _iso(T), "to": _iso(T + 3600)}]


def test_a_short_silence_or_a_kiosk_beside_covers_it() -> None:
    assert not_running([T, T + GAP - 1, T + 2 * GAP - 2], T, T + 2 * GAP - 2) == []
    here = [T + 60 * m for m in range(0, 30)]  # stops after half an hour
    beside = [T + 60 * m + 30 for m in range(0, 121)]  # the other kiosk of the lobby runs on
    assert not_running(sorted(here + beside), T, T + 7200) == []
