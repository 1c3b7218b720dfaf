"""The data disk's levels: how much free space is left decides what the kiosk does.

The outbox must hold 90 days of check-ins with no network, and the disk fills exactly when
the network is down (nothing is acknowledged, so nothing is deleted). Rather than find out at
the last commit, the kiosk steps down in three stages, set in ``[outbox]``
(docs/configuration.md; docs/faults.md says what each does):

============  ======================  ================================================
level         free space below        the kiosk
============  ======================  ================================================
``ok``        —                       works normally
``low``       ``low_free_mb``         tells staff (alert ``disk_low``); check-ins as usual
``no_photo``  ``no_photo_free_mb``    saves check-ins without the photo (flag ``no_photo``,
                                      ``detail.no_photo = "disk_low"``); alert ``disk_no_photo``
``full``      ``min_free_mb``         writes no record; a person who starts a check-in is sent
                                      to reception at once; alert ``disk_full``
============  ======================  ================================================

The sealed photo is nearly all of a check-in's bytes (a record is ~2 KB, a photo ~100-300 KB),
so once photos stop, the space between the no-photo level and the reserve lasts for tens of
thousands of check-ins: the reserve is then reached only if something else fills the disk.

:func:`headroom` turns the free space and the outbox's recent use (:class:`Usage`) into days
left before the next step down, for ``kioskctl doctor``.

May import: the standard library (``daemon.config`` for types only).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.config import OutboxConfig

MB = 1024 * 1024
DAY_S = 86400.0
#: record types that are someone's attendance (for "check-ins a day")
ATTENDANCE_TYPES = ("checkin", "checkin_fallback", "see_officer", "fault", "staff_override")


class Level(enum.StrEnum):
    """From best to worst; the check-in flow receives the value (a plain string)."""

    OK = "ok"
    LOW = "low"
    NO_PHOTO = "no_photo"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Levels:
    """The three thresholds, in bytes of free space (``reserve <= no_photo <= low``)."""

    reserve: int
    no_photo: int
    low: int

    @classmethod
    def from_config(cls, cfg: OutboxConfig) -> Levels:
        return cls(cfg.min_free_mb * MB, cfg.no_photo_mb * MB, cfg.low_mb * MB)

    def level(self, free: int) -> Level:
        """The level for ``free`` bytes of free space."""
        if free < self.reserve:
            return Level.FULL
        if free < self.no_photo:
            return Level.NO_PHOTO
        if free < self.low:
            return Level.LOW
        return Level.OK


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on ``folder``'s file system (statvfs
    ``f_bavail``, as the outbox's reserve check counts them). Raises OSError."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True, slots=True)
class Usage:
    """What the outbox took over the last ``days``, as it piles up with no network (the
    outbox's :meth:`~daemon.outbox.Outbox.usage` measures it)."""

    days: float
    records: int
    #: the signed records' own bytes (their compact JWS)
    record_bytes: int
    checkins: int
    #: records that named a sealed photo
    photos: int
    #: the average sealed photo, bytes (measured from the photos still held, else assumed)
    photo_size: float

    @property
    def checkins_per_day(self) -> float:
        return self.checkins / self.days

    def bytes_per_day(self, *, photos: bool = True) -> float:
        """Bytes a day at this rate: records and, unless ``photos`` is False, their photos."""
        total = self.record_bytes + (self.photos * self.photo_size if photos else 0.0)
        return total / self.days


@dataclass(frozen=True, slots=True)
class Headroom:
    """Days left before the next step down (``until``: ``photos_stop`` or
    ``checkins_stop``); ``days`` is None when nothing was written recently (no rate)."""

    days: float | None
    until: str


def headroom(free: int, levels: Levels, usage: Usage) -> Headroom:
    """Days of headroom at the recent rate. Above the no-photo level: until photos stop
    (check-ins with their photos). Below it: until the reserve (records alone)."""
    if free >= levels.no_photo and levels.no_photo > levels.reserve:
        rate, room, until = usage.bytes_per_day(), free - levels.no_photo, "photos_stop"
    else:
        rate, room, until = (
            usage.bytes_per_day(photos=False),
            free - levels.reserve,
            "checkins_stop",
        )
    if room <= 0:
        return Headroom(0.0, until)
    if rate <= 0:
        return Headroom(None, until)
    return Headroom(room / rate, until)
