"""The self-test's verdict, from the reports a running kiosk writes (daemon/health.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon import health
from daemon.config import ApiConfig, Config, DeviceConfig
from daemon.kioskctl import selftest
from daemon.kioskctl.__main__ import main
from daemon.kioskctl.context import Context
from daemon.kioskctl.parts import Parts, RunResult
from tests.kioskctl.fakesys import fake_sysfs, pid1

BOOT = "0f0e0d0c-0b0a-4908-8706-050403020100"
ALL_UP = (0, "active\nactive\nactive\n")


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1, "at": 1000.0, "boot_id": BOOT, "pid": 42, "app": "1.0.0",
        "boot_record_seq": 17, "faults": {}, "camera_probe": "ok", "simulated": [],
        "ui_beat_age_s": 4.0, "busy": False,
    }  # fmt: skip
    return base | changes


def verdict(rep: dict[str, Any] | None, services: RunResult = ALL_UP, **kw: Any) -> dict[str, str]:
    rows = selftest.evaluate(rep, services, allow_simulated=kw.get("sim", False), now=1005.0)
    return {r.name: r.status for r in rows}


def test_a_healthy_kiosk_passes_every_row() -> None:
    assert set(verdict(report()).values()) == {"pass"}


@pytest.mark.parametrize(
    ("rep", "row"),
    [
        (report(faults={"fingerprint": "no_answer"}), "fingerprint"),
        (report(camera_probe=None), "camera"),
        (report(faults={"camera": "camera_blank"}, camera_probe="camera_blank"), "camera"),
        (report(ui_beat_age_s=None), "screen"),
        (report(ui_beat_age_s=95.0), "screen"),
        (report(boot_record_seq=None), "outbox"),
        (report(simulated=["camera"]), "real hardware"),
        (report(at=900.0), "health report"),
        (None, "health report"),
    ],
)
def test_each_broken_part_fails_its_own_row(rep: dict[str, Any] | None, row: str) -> None:
    got = verdict(rep)
    assert got[row] == "fail"
    assert [k for k, v in got.items() if v == "fail"] == [row]


def test_a_stopped_service_fails_and_simulated_parts_pass_on_a_test_rig() -> None:
    got = verdict(report(), services=(3, "active\nfailed\nactive\n"))
    assert got["services"] == "fail"
    assert verdict(report(simulated=["camera"]), sim=True).get("real hardware") is None


def _ctx(tmp_path: Path, run: Any = lambda argv, t: ALL_UP) -> Context:
    """A kiosk whose hardware watchdog is armed and fed (a fake sysfs; PID 1 says 14 s)."""
    cfg = Config(DeviceConfig(id="kiosk-t", data_dir=tmp_path), ApiConfig(url="https://x.test/"))
    sysfs = fake_sysfs(tmp_path / "sys")
    return Context(cfg, parts=Parts(run=pid1("14s", otherwise=run)), sysfs=sysfs)


def test_waiting_after_boot_retries_until_the_screen_comes_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selftest.health, "candidates", lambda d: [tmp_path / "health.json"])
    ctx = _ctx(tmp_path)
    clock = {"t": 0.0}
    states = iter([report(ui_beat_age_s=None), report()])

    def sleep(s: float) -> None:
        clock["t"] += s
        health.write(tmp_path / "health.json", next(states) | {"at": health.time.time()})

    health.write(tmp_path / "health.json", report(ui_beat_age_s=None, at=health.time.time()))
    rows = selftest.wait_for_pass(ctx, 30, sleep=sleep, monotonic=lambda: clock["t"])
    assert all(r.status == "pass" for r in rows) and clock["t"] == 4.0
    health.write(tmp_path / "health.json", report(ui_beat_age_s=None, at=health.time.time()))
    clock["t"] = 0.0
    rows = selftest.wait_for_pass(ctx, 5, sleep=lambda s: clock.update(t=clock["t"] + s),
                                  monotonic=lambda: clock["t"])  # fmt: skip
    assert any(r.status == "fail" for r in rows) and clock["t"] == 6.0  # gave up, said so


def test_the_reboot_waits_for_the_person_at_the_kiosk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selftest.health, "candidates", lambda d: [tmp_path / "health.json"])
    ctx = _ctx(tmp_path)
    clock = {"t": 0.0}
    health.write(tmp_path / "health.json", report(busy=True, at=health.time.time()))

    def sleep(s: float) -> None:
        clock["t"] += s
        if clock["t"] >= 3:  # they finish
            health.write(tmp_path / "health.json", report(busy=False, at=health.time.time()))

    assert selftest.wait_until_idle(ctx, 60, sleep=sleep, monotonic=lambda: clock["t"])
    assert clock["t"] == 3.0
    health.write(tmp_path / "health.json", report(busy=True, at=health.time.time()))
    clock["t"] = 0.0
    assert not selftest.wait_until_idle(ctx, 10, sleep=lambda s: clock.update(t=clock["t"] + s),
                                        monotonic=lambda: clock["t"])  # fmt: skip


def test_the_command_prints_the_table_and_json_and_exits_1_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selftest.health, "RUNTIME_DIR", tmp_path / "no-run")
    monkeypatch.delenv("KIOSK_AUTOBOOT_DIR", raising=False)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[device]\nid = "kiosk-t"\ndata_dir = "{tmp_path}"\n[api]\nurl = "https://x.test/"\n'
    )
    code = main(["--config", str(config), "selftest", "--json", "--commit"],
                parts=Parts(run=lambda argv, t: ALL_UP))  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False
    assert doc["decision"]["action"] == "no_slots"
    assert any(c["name"] == "health report" and c["status"] == "fail" for c in doc["checks"])


def test_doctor_shows_the_slots_and_a_rejected_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.updates.card import Card

    ctx = _ctx(tmp_path / "kiosk")
    monkeypatch.setenv("KIOSK_AUTOBOOT_DIR", str(tmp_path / "nothing"))
    assert selftest.check_slots(ctx) == []  # not the kiosk image: no row
    card = Card(tmp_path / "card")
    for k, v in card.env().items():
        monkeypatch.setenv(k, v)
    [row] = selftest.check_slots(ctx)
    assert (row.status, row.detail) == ("pass", "running slot A, the default")
    slots = card.slots()
    slots.set_state("B", False)
    slots.set_primary("B")
    slots.start_trial()
    card.power_on(tryboot=True)
    [row] = selftest.check_slots(ctx)
    assert row.status == "warn" and "unproven trial; slot A is the fallback" in row.detail
    card.power_on()  # the trial died
    [row] = selftest.check_slots(ctx)
    assert row.status == "warn" and "slot B never passed its trial boot" in row.detail
    card.slots().give_up_trial("B")
    [row] = selftest.check_slots(ctx)
    assert row.status == "warn" and "slot B marked bad" in row.detail
    assert "kioskctl update" in row.fix


def test_a_rejected_update_is_rolled_back_only_once_nobody_is_checking_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon.kioskctl.report import failed
    from tests.updates.card import Card

    card = Card(tmp_path / "card")
    slots = card.slots()
    slots.set_state("B", False)
    slots.set_primary("B")
    slots.start_trial()
    card.power_on(tryboot=True)
    events: list[str] = []

    def run(argv: list[str], timeout_s: float) -> RunResult:
        events.append(" ".join(argv))
        return None if argv[0] == "rauc" else (0, "")  # no rauc here: the backend directly

    def until_idle(ctx: Context) -> bool:
        events.append("waited for the person to finish")
        assert card.slots().state("B") == "bad"  # already marked: a power cut now is safe
        return True

    rows = [failed("camera", "failed: camera_blank", "check the lens")]
    decision = selftest.decide(_ctx(tmp_path, run), rows, card.slots(), until_idle=until_idle)
    assert decision.action == "rolled_back"
    assert events[-2:] == ["waited for the person to finish", "systemctl reboot"]
    assert card.power_on() == 2
