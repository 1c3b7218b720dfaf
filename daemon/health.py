"""The kiosk's health report: a small JSON file kiosk.service rewrites every few seconds, read
by ``kioskctl selftest`` (an update is committed only when it passes) and ``kioskctl update``
(which waits for nobody to be mid-check-in before rebooting).

It lives in the service's runtime directory (``$RUNTIME_DIRECTORY``, /run/kiosk: tmpfs, so
no SD-card wear), or in the data folder when there is none (the demo, tests). It holds no
personal data: part names and reasons, ages, a "busy" flag.

May import: the standard library, ``daemon.diskspace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from daemon.diskspace import Levels

log = logging.getLogger(__name__)

FILE = "health.json"
INTERVAL_S = 3.0
RUNTIME_DIR = Path("/run/kiosk")
#: the SoC's temperature, millidegrees Celsius (Raspberry Pi OS)
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
#: a report older than this means kiosk.service is not running (it rewrites every 3 s)
FRESH_S = 15.0


def path_for(data_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where kiosk.service writes its report."""
    env = os.environ if env is None else env
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return (Path(runtime) if runtime else Path(data_dir)) / FILE


def candidates(data_dir: Path) -> list[Path]:
    """Where a reader (not inside the unit) looks: the unit's runtime folder, then the data
    folder."""
    return [RUNTIME_DIR / FILE, Path(data_dir) / FILE]


def write(path: Path, report: Mapping[str, Any]) -> None:
    """Replace the report atomically (readers never see half a file). Not fsynced: it is
    rewritten every few seconds and means nothing after a reboot."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, sort_keys=True), encoding="utf-8")
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def read(paths: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable report among ``paths``, or None."""
    best: tuple[float, Path, dict[str, Any]] | None = None
    for p in paths:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("at"), (int, float)):
            continue
        if best is None or data["at"] > best[0]:
            best = (float(data["at"]), p, data)
    return None if best is None else (best[1], best[2])


async def keep_writing(
    path: Path, report: Callable[[], Mapping[str, Any]], stop: asyncio.Event
) -> None:
    failing = False
    while not stop.is_set():
        try:
            write(path, report())
            failing = False
        except OSError as exc:
            if not failing:  # once, not every 3 s; the self-test sees a stale report
                log.warning("cannot write the health report %s: %s", path, exc.strerror)
            failing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_S)


def age_s(report: Mapping[str, Any], now: float | None = None) -> float:
    return (time.time() if now is None else now) - float(report.get("at", 0.0))


def heartbeat_figures(
    data_dir: Path,
    *,
    now: float | None = None,
    paths: list[Path] | None = None,
    thermal: Path = THERMAL,
    levels: Levels | None = None,
) -> dict[str, Any]:
    """What kiosk-sync adds to each heartbeat (docs/api.md, "Heartbeat"), so the service sees
    a broken part, a filling disk or a stopped kiosk without anyone on site: the parts' state
    from kiosk.service's health report, free space on the data partition and, given the
    ``levels``, which one it is at (``disk``: ok, low, no_photo, full; read here, so it is
    known even while kiosk.service is down), the SoC temperature. No personal data: part
    names, reasons, numbers."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError):
        st = os.statvfs(data_dir)
        free = st.f_bavail * st.f_frsize
        out["disk_free_mb"] = round(free / (1024 * 1024), 1)
        if levels is not None:
            out["disk"] = str(levels.level(free))
    with contextlib.suppress(OSError, ValueError):
        out["temperature_c"] = round(int(thermal.read_text().strip()) / 1000, 1)
    now = time.time() if now is None else now
    found = read(candidates(data_dir) if paths is None else paths)
    age = None if found is None else round(now - float(found[1]["at"]), 1)
    if found is None or age is None or age > FRESH_S:
        # the kiosk process is not reporting: its parts' state is not known
        out.update(kiosk="not_reporting", kiosk_report_age_s=age, sensor="unknown",
                   camera="unknown")  # fmt: skip
        return out
    report = found[1]
    raw = report.get("faults")
    faults: dict[str, Any] = raw if isinstance(raw, dict) else {}
    probe = report.get("camera_probe")
    out.update(
        kiosk="running",
        kiosk_report_age_s=age,
        sensor=str(faults.get("fingerprint", "ok")),
        camera=str(faults.get("camera") or (probe if probe not in (None, "ok") else "ok")),
        faults={str(k): str(v) for k, v in faults.items()},
        ui_beat_age_s=report.get("ui_beat_age_s"),
        kiosk_up_s=report.get("up_s"),
        simulated=bool(report.get("simulated")),
    )
    return out
