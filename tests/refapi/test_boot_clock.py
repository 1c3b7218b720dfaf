"""Dating records made before a kiosk's clock was synchronised (hil/refapi/missed.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from daemon.records import b64url
from hil.refapi.missed import BootClock, attendances

BOOT, OTHER = "boot-a", "boot-b"
T0 = 1_795_000_000.0  # true Unix time at the boot's monotonic zero


def _at(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rec(mono_s: float, *, synced: bool, boot: str = BOOT, skew: float = 0.0) -> dict[str, Any]:
    return {
        "at": _at(T0 + mono_s + skew),
        "clock": {"synced": synced, "boot_id": boot, "mono_ns": int(mono_s * 1e9)},
    }


def test_a_record_before_the_sync_is_dated_by_its_boots_synchronised_records() -> None:
    early = _rec(100, synced=False, skew=-9 * 86400)  # the clock was nine days slow
    records = [early, _rec(7300, synced=True), _rec(90000, synced=True)]
    boots = BootClock(records)
    received = T0 + 8 * 86400
    assert abs(boots.time_of(early, received) - (T0 + 100)) < 0.01
    assert boots.time_of(records[1], received) == T0 + 7300  # a synchronised one is its own


def test_the_nearest_synchronised_record_wins_so_drift_stays_small() -> None:
    early = _rec(100, synced=False, skew=-50)
    near = _rec(200, synced=True)
    far = _rec(900_000, synced=True, skew=3.0)  # three seconds of drift a week later
    boots = BootClock([far, early, near])
    assert abs(boots.time_of(early, T0 + 10**6) - (T0 + 100)) < 0.01


def test_a_boot_that_never_synchronised_falls_back_to_the_receipt_time() -> None:
    lonely = _rec(100, synced=False, boot=OTHER, skew=-86400)
    boots = BootClock([lonely, _rec(200, synced=True)])  # another boot's anchor does not help
    assert boots.time_of(lonely, T0 + 5000) == T0 + 5000
    assert boots.time_of({"at": "nonsense"}, 42.0) == 42.0  # a record that says nothing


def test_a_record_is_never_dated_after_the_api_received_it() -> None:
    early = _rec(100, synced=False)
    boots = BootClock([early, _rec(200, synced=True, skew=3600)])  # a bad anchor: an hour fast
    assert boots.time_of(early, T0 + 1000) == T0 + 1000


def _compact(payload: dict[str, Any]) -> str:
    """A record's shape for attendances(), which reads records it does not verify."""
    return ".".join(b64url(json.dumps(part).encode()) for part in ({"alg": "ES256"}, payload, {}))


def test_a_check_in_cut_short_overnight_counts_for_the_day_the_person_came() -> None:
    # identified at 16:55 on the boot before a power cut (the clock synchronised); the kiosk
    # came back the next morning and only then made the fault record
    there = _rec(1000, synced=True)
    fault = {**_rec(50, synced=True, boot=OTHER, skew=15 * 3600), "type": "fault",
             "person": "CR-900101",
             "detail": {"part": "kiosk", "reason": "restarted", "identified": there}}  # fmt: skip
    seen = attendances([(_compact(fault), T0 + 86400)])
    assert seen == {"CR-900101": [T0 + 1000]}
    # and with an unsynchronised clock it is re-based on that boot's synchronised records
    early = {**_rec(1000, synced=False, skew=-9 * 86400)}
    anchor = {**_rec(5000, synced=True), "type": "boot"}
    fault["detail"] = {"part": "kiosk", "reason": "restarted", "identified": early}
    seen = attendances([(_compact(anchor), T0 + 5000), (_compact(fault), T0 + 86400)])
    assert abs(seen["CR-900101"][0] - (T0 + 1000)) < 0.01
