"""checkin.device_p50_ms / checkin.device_p99_ms, daemon.ready_s, daemon.rss_mb.

- Check-in device latency: from the finger lifted to the record durable — the photo captured
  (synthetic camera at evidence resolution, quality gate, JPEG), sealed with HPKE, the record
  signed and committed with its blob (WAL, synchronous=FULL) — over 300 check-ins. Everything
  but the sensor and the person.
- daemon.ready_s / daemon.ui_ready_s / daemon.rss_mb: the real daemon process (``python -m
  daemon run``, kiosk.service's command) on a simulated kiosk, driven from outside
  (hil/bench/kiosk_process.py): start → READY=1 on its notify socket; start → its page served
  on 127.0.0.1; its resident memory after 100 check-ins through its UI, its serial link to the
  emulated sensor, the synthetic camera and the outbox.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from hil.bench import Figure
from hil.bench.kiosk_process import simulated_device

ROOT = Path(__file__).resolve().parents[2]
N = 300
RSS_CHECKINS = 100
#: the latency loop opens the kiosk in this process, with the emulator on an in-memory link
EMULATOR = 'backend = "emulator"\nemulator_time_scale = 0.0'


async def _latency(cfg_path: Path) -> list[float]:
    from daemon.app import KioskCore
    from daemon.config import load_config

    core = KioskCore(load_config(cfg_path))
    await core.open()
    try:
        hw, sealer = core.hardware, core.sealer
        assert hw is not None and sealer is not None
        out = []
        for i in range(N):
            t = time.perf_counter()  # the finger is lifted
            photo = hw.camera.capture_still()
            sealed = sealer.seal_photo(photo.jpeg)
            core.commit(
                "checkin",
                {
                    "person": f"CR-{i:06d}",
                    "verify": {
                        "method": "fingerprint",
                        "score": 140,
                        "threshold": 60,
                        "attempts": 1,
                    },
                    "answers": {"address_changed": False},
                    "flags": [],
                },
                blob=sealed.blob,
            )
            out.append((time.perf_counter() - t) * 1000)
        return sorted(out)
    finally:
        core.close()


def _process() -> tuple[float, float, float]:
    """The real daemon process: (start → READY s, start → page served s, RSS MB after
    RSS_CHECKINS check-ins through its UI and its serial sensor link)."""
    from daemon.demo_support import PEOPLE
    from hil.bench.kiosk_process import KioskProcess, KioskProcessError

    folder = Path(tempfile.mkdtemp(prefix="bench-daemon-", dir=ROOT / ".cache"))
    try:
        with KioskProcess(folder, list(PEOPLE)) as kiosk:
            for i in range(RSS_CHECKINS):
                kiosk.check_in(PEOPLE[i % len(PEOPLE)])
            if (made := kiosk.records("checkin")) != RSS_CHECKINS:
                raise KioskProcessError(f"{RSS_CHECKINS} check-ins made {made} records")
            return kiosk.ready_s, kiosk.ui_ready_s, kiosk.status_kb("VmRSS") / 1024
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def figures() -> dict[str, Figure]:
    (ROOT / ".cache").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-checkin-", dir=ROOT / ".cache"))
    try:
        cfg = simulated_device(folder, fingerprint=EMULATOR)
        lat = asyncio.run(_latency(cfg))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ready, ui_ready, rss = _process()
    return {
        "checkin.device_p50_ms": {"value": round(lat[len(lat) // 2], 2), "unit": "ms",
                                  "note": f"{N} check-ins: photo, seal, sign, commit"},
        "checkin.device_p99_ms": {"value": round(lat[int(len(lat) * 0.99) - 1], 2),
                                  "unit": "ms", "target": "<= 50"},
        "daemon.ready_s": {"value": round(ready, 3), "unit": "s", "target": "<= 1.5",
                           "note": "python -m daemon run, simulated hardware, start to READY=1"},
        "daemon.ui_ready_s": {"value": round(ui_ready, 3), "unit": "s",
                              "note": "the same start, to the page served on 127.0.0.1"},
        "daemon.rss_mb": {"value": round(rss, 1), "unit": "MB", "target": "<= 80",
                          "note": f"the daemon process after {RSS_CHECKINS} check-ins through "
                                  "its UI and its serial sensor link"},
    }  # fmt: skip
