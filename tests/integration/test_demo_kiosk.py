"""The demo's kiosk is provisioned as a real one is: ``kioskctl doctor`` and
``kioskctl outbox verify`` find what ``kioskctl provision`` would have left."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from daemon.clock import FakeClock
from daemon.demo_support import provision
from daemon.kioskctl.__main__ import main
from daemon.kioskctl.parts import Parts
from daemon.outbox import Outbox
from hil.refapi.server import RefApi
from tests.prompts import silent_prompts


def test_doctor_finds_the_demo_kiosk_enrolled(tmp_path: Path) -> None:
    api = RefApi(tmp_path / "api")
    api.start()
    try:
        device = provision(api, tmp_path / "kiosk")
        prompts = silent_prompts(tmp_path / "prompts")
        clock = FakeClock(wall=time.time(), synced=True)
        with Outbox(device.data_dir, device=device.id, key=device.key.load(),
                    clock=clock) as outbox:  # fmt: skip
            outbox.append("boot", {})

        def kioskctl(*argv: str) -> tuple[int, str]:
            out = io.StringIO()
            code = main(["--config", str(device.config_path), *argv],
                        parts=Parts(run=lambda _argv, _t: None, prompts_dir=prompts,
                                    sound_cards=lambda: ["Device"]),
                        clock=clock, stdout=out,
                        stderr=io.StringIO())  # fmt: skip
            return code, out.getvalue()

        code, out = kioskctl("doctor", "--no-hardware", "--json")
        rows = {c["name"]: c for c in json.loads(out)["checks"]}
        for name in ("key", "key permissions", "key enrolment", "api tls", "api enrolment"):
            assert rows[name]["status"] == "pass", rows[name]
        assert code == 0
        code, out = kioskctl("outbox", "verify")  # with the key enrolment.json names
        assert code == 0 and out.startswith("OK: 1 records verified"), out
    finally:
        api.stop()
