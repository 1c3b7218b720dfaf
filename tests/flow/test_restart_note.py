"""The note of the check-in under way, kept by the runner (daemon/kiosk.py) in the outbox:
the parts the real-process tests (tests/integration/test_kiosk_process.py) cannot reach."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from daemon.app import KioskCore
from daemon.config import load_config
from daemon.demo_support import PEOPLE
from daemon.errors import DeviceKeyError
from daemon.flow import events
from daemon.kiosk import CheckinRunner
from daemon.records import decode_unverified
from hil.bench.kiosk_process import simulated_device, write_roster

CUT_SHORT = {
    "session": 4,
    "person": PEOPLE[0].ref,
    "lang": "cy",
    "verify": {"method": "dob_photo", "attempts": 3},
    "at": "2026-11-24T09:00:00Z",
}


def _faults(core: KioskCore) -> list[dict[str, Any]]:
    assert core.outbox is not None
    payloads = [decode_unverified(c)[1] for _s, _st, c in core.outbox.all_compact()]
    return [p for p in payloads if p["type"] == "fault"]


def test_a_cut_short_check_in_that_cannot_be_saved_yet_is_not_overwritten(
    tmp_path: Path,
) -> None:
    """At start its fault record fails (a hardware key that stopped answering): the next
    person's check-in must not replace the note, which is the only copy; once saving works
    again the owed record goes first, then the next person's note."""
    cfg = load_config(simulated_device(tmp_path, fingerprint='backend = "emulator"'))
    write_roster(cfg.device.data_dir, list(PEOPLE))

    async def scenario() -> None:
        core = KioskCore(cfg)
        await core.open()
        assert core.outbox is not None
        core.outbox.mark_session(CUT_SHORT)  # what the last run left
        real = core.commit
        broken = True

        def commit(type_: str, fields: dict[str, Any], *a: Any, **k: Any) -> Any:
            if broken and type_ == "fault":
                raise DeviceKeyError("the hardware key does not answer")
            return real(type_, fields, *a, **k)

        core.commit = commit  # type: ignore[method-assign]
        runner = CheckinRunner(core)
        try:
            runner._resume_interrupted()
            runner._reload_roster()
            runner._step(runner.queue.get_nowait())  # RosterLoaded

            def tap(event: type[events.Event], **data: Any) -> None:
                runner._step(event(now=time.monotonic(), **data))

            nxt = PEOPLE[1]
            tap(events.Start, lang="en")
            for d in nxt.ref.removeprefix("CR-"):
                tap(events.Key, digit=d)
            tap(events.Submit)
            yyyy, mm, dd = nxt.dob.split("-")
            for d in dd + mm + yyyy:
                tap(events.Key, digit=d)
            tap(events.Submit)
            assert runner.state.session is not None and runner.state.session.identified
            assert core.outbox.open_session() == CUT_SHORT  # kept, not replaced
            assert _faults(core) == []
            broken = False  # the key answers again
            tap(events.Tick)
            faults = _faults(core)
            assert [f["person"] for f in faults] == [PEOPLE[0].ref]
            assert faults[0]["detail"]["lang"] == "cy"
            assert faults[0]["flags"] == ["id_review", "fault", "no_photo"]  # DOB only
            note = core.outbox.open_session()
            assert note is not None and note["person"] == nxt.ref  # now the next person's
        finally:
            for t in runner._tasks:
                t.cancel()
            core.close()

    asyncio.run(scenario())
