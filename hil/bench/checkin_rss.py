"""Run 100 check-ins through the real flow on a simulated kiosk, then print this process's
resident memory in MB (for daemon.rss_mb). Needs no API: the roster is written locally."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from daemon.app import KioskCore
from daemon.config import load_config
from daemon.demo_script import Visit, Visitor
from daemon.demo_support import PEOPLE, dob_hmac
from daemon.kiosk import CheckinRunner
from daemon.sealing import RosterKey, roster_key_path, seal_template
from hil.bench.checkin import _device
from hil.fingerprint.fingers import make_template


async def main(folder: Path) -> None:
    cfg = load_config(_device(folder))
    roster_pub = RosterKey.load(roster_key_path(cfg.device.key_path)).public_bytes()
    salt = os.urandom(16)
    roster = {
        "office": "bench", "generated_at": "2026-11-23T08:00:00Z",
        "dob_salt": base64.b64encode(salt).decode(),
        "people": [
            {"ref": p.ref, "dob_hmac": dob_hmac(salt, p.dob),
             "templates": [{"finger": "right_index", "sealed": base64.b64encode(
                 seal_template(make_template(p.ref, p.finger, 1536), roster_pub)).decode()}],
             "next_appointment": None, "messages": [], "questions": []}
            for p in PEOPLE
        ],
    }  # fmt: skip
    (cfg.device.data_dir / "roster.json").write_text(json.dumps(roster))
    core = KioskCore(cfg)
    await core.open()
    runner = CheckinRunner(core)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    me = Visitor(runner, core)
    while not runner.state.roster.people:
        await asyncio.sleep(0.01)
    for i in range(100):
        await me.visit(Visit(PEOPLE[i % len(PEOPLE)]))
    rss_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    core.close()
    print(rss_kb / 1024)


if __name__ == "__main__":
    tmp = Path(tempfile.mkdtemp())
    try:
        asyncio.run(main(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
