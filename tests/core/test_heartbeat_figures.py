"""What kiosk-sync adds to each heartbeat (daemon/health.py heartbeat_figures): the parts'
state from kiosk.service's health report, free space, temperature; nothing personal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon import health
from daemon.config import OutboxConfig
from daemon.diskspace import Levels, free_bytes

ALLOWED = {
    "disk_free_mb", "disk", "temperature_c", "kiosk", "kiosk_report_age_s", "sensor", "camera",
    "faults", "ui_beat_age_s", "kiosk_up_s", "simulated",
}  # fmt: skip


def _report(folder: Path, at: float, **changes: Any) -> Path:
    body = {
        "v": 1, "at": at, "boot_id": "b", "pid": 1, "app": "1", "boot_record_seq": 3,
        "faults": {}, "camera_probe": "ok", "simulated": [], "ui_beat_age_s": 2.0,
        "up_s": 75.5, "busy": True,
    } | changes  # fmt: skip
    path = folder / health.FILE
    path.write_text(json.dumps(body))
    return path


def test_a_running_kiosk_reports_its_parts_disk_and_temperature(tmp_path: Path) -> None:
    thermal = tmp_path / "temp"
    thermal.write_text("54321\n")
    path = _report(tmp_path, 1000.0, faults={"camera": "camera_blank"}, simulated=["gpio"])
    got = health.heartbeat_figures(tmp_path, now=1004.0, paths=[path], thermal=thermal)
    assert got["kiosk"] == "running" and got["kiosk_report_age_s"] == 4.0
    assert got["sensor"] == "ok" and got["camera"] == "camera_blank"
    assert got["faults"] == {"camera": "camera_blank"}
    assert got["temperature_c"] == 54.3 and got["disk_free_mb"] > 0
    assert got["simulated"] is True and got["ui_beat_age_s"] == 2.0
    assert got["kiosk_up_s"] == 75.5  # with no beat yet, how long the screen has been dark
    assert set(got) <= ALLOWED  # no boot id, pid or "busy" (is someone there) leaves the kiosk


def test_a_covered_lens_found_at_start_is_the_camera_state(tmp_path: Path) -> None:
    path = _report(tmp_path, 1000.0, camera_probe="camera_blank")
    got = health.heartbeat_figures(tmp_path, now=1001.0, paths=[path], thermal=tmp_path / "x")
    assert got["camera"] == "camera_blank" and "temperature_c" not in got  # no sensor file


def test_a_stopped_kiosk_is_said_and_its_parts_are_unknown(tmp_path: Path) -> None:
    path = _report(tmp_path, 1000.0, faults={"fingerprint": "sensor_not_answering"})
    got = health.heartbeat_figures(tmp_path, now=1000.0 + health.FRESH_S + 1, paths=[path])
    assert got["kiosk"] == "not_reporting" and got["sensor"] == got["camera"] == "unknown"
    assert "faults" not in got  # an old fault is not reported as the current state
    none = health.heartbeat_figures(tmp_path, now=1000.0, paths=[tmp_path / "missing.json"])
    assert none["kiosk"] == "not_reporting" and none["kiosk_report_age_s"] is None
    (tmp_path / "garbage.json").write_text("{not json")
    assert health.heartbeat_figures(tmp_path, paths=[tmp_path / "garbage.json"])["kiosk"] == (
        "not_reporting"
    )


def test_the_disk_level_is_read_here_so_it_is_known_while_the_kiosk_is_down(
    tmp_path: Path,
) -> None:
    free_mb = free_bytes(tmp_path) // (1024 * 1024)
    for cfg, level in (
        (OutboxConfig(min_free_mb=1, no_photo_free_mb=1, low_free_mb=1), "ok"),
        (OutboxConfig(min_free_mb=1, low_free_mb=free_mb + 100_000), "low"),
        (OutboxConfig(min_free_mb=1, no_photo_free_mb=free_mb + 100_000), "no_photo"),
        (OutboxConfig(min_free_mb=free_mb + 100_000), "full"),
    ):
        got = health.heartbeat_figures(tmp_path, paths=[tmp_path / "no-report.json"],
                                       levels=Levels.from_config(cfg))  # fmt: skip
        assert got["disk"] == level and got["kiosk"] == "not_reporting"
    assert "disk" not in health.heartbeat_figures(tmp_path, paths=[])
