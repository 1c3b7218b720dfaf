"""The data disk's levels and the headroom estimate (daemon/diskspace.py)."""

from __future__ import annotations

from pathlib import Path

from daemon.config import OutboxConfig
from daemon.diskspace import MB, Headroom, Level, Levels, Usage, free_bytes, headroom

LEVELS = Levels.from_config(OutboxConfig(min_free_mb=64, no_photo_free_mb=256, low_free_mb=1024))


def test_each_threshold_starts_its_level() -> None:
    assert LEVELS.level(1024 * MB) == Level.OK
    assert LEVELS.level(1024 * MB - 1) == Level.LOW
    assert LEVELS.level(256 * MB) == Level.LOW
    assert LEVELS.level(256 * MB - 1) == Level.NO_PHOTO
    assert LEVELS.level(64 * MB) == Level.NO_PHOTO
    assert LEVELS.level(64 * MB - 1) == Level.FULL
    assert LEVELS.level(0) == Level.FULL


def test_free_bytes_is_what_statvfs_gives_an_ordinary_writer(tmp_path: Path) -> None:
    import os

    st = os.statvfs(tmp_path)
    assert abs(free_bytes(tmp_path) - st.f_bavail * st.f_frsize) < 64 * MB


# 100 check-ins a day, each a 2 KB record and a 200 KB photo
BUSY = Usage(days=7, records=700, record_bytes=700 * 2000, checkins=700, photos=700,
             photo_size=200_000)  # fmt: skip


def test_headroom_counts_days_until_photos_stop_then_until_check_ins_stop() -> None:
    h = headroom(1024 * MB, LEVELS, BUSY)
    assert h.until == "photos_stop"
    assert h.days is not None and round(h.days, 1) == round(768 * MB / (100 * 202_000), 1)
    # below the no-photo level only the records count: years of room, not days
    h = headroom(200 * MB, LEVELS, BUSY)
    assert h.until == "checkins_stop"
    assert h.days is not None and round(h.days) == round(136 * MB / (100 * 2000))
    assert headroom(10 * MB, LEVELS, BUSY) == Headroom(0.0, "checkins_stop")


def test_no_recent_check_ins_means_no_estimate() -> None:
    idle = Usage(days=7, records=0, record_bytes=0, checkins=0, photos=0, photo_size=250_000)
    assert headroom(2000 * MB, LEVELS, idle) == Headroom(None, "photos_stop")
