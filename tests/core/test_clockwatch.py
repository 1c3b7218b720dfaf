"""Clock jumps are noticed and recorded; record order follows seq, not the wall clock."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import FakeClock
from daemon.clockwatch import ClockWatch
from daemon.records import verify_chain
from tests.core.helpers import make_key, open_outbox, synthetic_checkin


def test_steps_both_ways_are_recorded_and_order_is_by_seq(tmp_path: Path) -> None:
    clock = FakeClock(synced=False)
    key = make_key()
    watch = ClockWatch(clock)
    with open_outbox(tmp_path, key, clock=clock) as ob:
        ob.append("checkin", synthetic_checkin(1))
        clock.advance(30)
        assert watch.check() is None  # time passing is not a step
        clock.step_wall(-3600)  # the clock jumps back an hour
        clock.set_synced(True)
        step = watch.check()
        assert step is not None and round(step.delta_s) == -3600 and step.synced
        ob.append("clock_step", {"detail": step.detail()})
        ob.append("checkin", synthetic_checkin(2))
        clock.step_wall(+86400)  # and forward a day
        forward = watch.check()
        assert forward is not None and forward.delta_s > 86000
        ob.append("clock_step", {"detail": forward.detail()})
        records = verify_chain([c for _s, _st, c in ob.all_compact()], key.public_key(), head_seq=4)
    assert [r.type for r in records] == ["checkin", "clock_step", "checkin", "clock_step"]
    ats = [r.payload["at"] for r in records]
    assert ats[2] < ats[0]  # wall time went backwards, seq still orders them
    assert [r.seq for r in records] == [1, 2, 3, 4]
