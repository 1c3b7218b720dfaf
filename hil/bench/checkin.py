"""checkin.device_p50_ms / checkin.device_p99_ms, daemon.ready_s, daemon.rss_mb.

- Check-in device latency: from the finger lifted to the record durable — the photo captured
  (synthetic camera at evidence resolution, quality gate, JPEG), sealed with HPKE, the record
  signed and committed with its blob (WAL, synchronous=FULL) — over 300 check-ins. Everything
  but the sensor and the person.
- daemon.ready_s: ``kiosk run`` started as a process with simulated hardware → READY=1 on its
  notify socket.
- daemon.rss_mb: resident memory of a kiosk process after 100 check-ins through the real flow.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hil.bench import Figure

ROOT = Path(__file__).resolve().parents[2]
N = 300


def _device(folder: Path) -> Path:
    """A simulated kiosk's keys and kiosk.toml, without enrolment (nothing here talks to an
    API)."""
    from daemon.keys import FileKeyBackend
    from daemon.sealing import (
        RosterKey,
        generate_keypair,
        public_from_private,
        public_to_b64,
        roster_key_path,
    )

    data = folder / "data"
    kb = FileKeyBackend(data / "device-key.pem")
    kb.create()
    RosterKey.create(roster_key_path(kb.path))
    private, _ = generate_keypair()
    cfg = folder / "kiosk.toml"
    cfg.write_text(
        f'[device]\nid = "kiosk-bench"\ndata_dir = "{data}"\nallow_simulated = true\n'
        f'[api]\nurl = "https://127.0.0.1:9/"\n'
        f'seal_public_key = "{public_to_b64(public_from_private(private))}"\n'
        '[fingerprint]\nbackend = "emulator"\nemulator_time_scale = 0.0\n'
        '[camera]\nbackend = "simulated"\n[gpio]\nbackend = "mock"\n'
        '[display]\nbackend = "simulated"\n'
    )
    return cfg


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


def _ready_s(cfg_path: Path, folder: Path) -> float:
    notify = folder / "notify.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(notify))
    rx.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "--config", str(cfg_path)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not rx.recv(4096).startswith(b"READY=1"):
            pass
        return time.perf_counter() - t
    finally:
        proc.terminate()
        proc.wait(20)
        rx.close()


def _rss_mb() -> float:
    """RSS of a fresh process that ran 100 check-ins through the real flow."""
    out = subprocess.run(
        [sys.executable, "-m", "hil.bench.checkin_rss"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def figures() -> dict[str, Figure]:
    (ROOT / ".cache").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-checkin-", dir=ROOT / ".cache"))
    try:
        cfg = _device(folder / "a")
        lat = asyncio.run(_latency(cfg))
        ready = _ready_s(_device(folder / "b"), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rss = _rss_mb()
    return {
        "checkin.device_p50_ms": {"value": round(lat[len(lat) // 2], 2), "unit": "ms",
                                  "note": f"{N} check-ins: photo, seal, sign, commit"},
        "checkin.device_p99_ms": {"value": round(lat[int(len(lat) * 0.99) - 1], 2),
                                  "unit": "ms", "target": "<= 50"},
        "daemon.ready_s": {"value": round(ready, 3), "unit": "s", "target": "<= 1.5"},
        "daemon.rss_mb": {"value": round(rss, 1), "unit": "MB", "target": "<= 80",
                          "note": "after 100 check-ins through the flow"},
    }  # fmt: skip
