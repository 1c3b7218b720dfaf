"""The hardware watchdog row (daemon/kioskctl/watchdog.py) in ``kioskctl doctor`` and the boot
self-test, against a fake sysfs tree: it passes only when the SoC's watchdog is running and
PID 1 feeds it, fails with a fix an engineer can act on when either is not so, and only warns
where no watchdog is to be expected (a container, a development machine)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from daemon.config import ApiConfig, Config, DeviceConfig
from daemon.kioskctl import doctor, selftest, watchdog
from daemon.kioskctl.context import Context
from daemon.kioskctl.parts import Parts, Runner
from daemon.kioskctl.report import Check, exit_status
from tests.kioskctl.fakesys import fake_sysfs, pid1


def _ctx(tmp_path: Path, run: Runner, sysfs: Path) -> Context:
    cfg = Config(
        DeviceConfig(id="kiosk-t", data_dir=tmp_path / "data"), ApiConfig(url="https://x.test/")
    )
    (tmp_path / "data").mkdir(exist_ok=True)
    return Context(cfg, parts=Parts(run=run), sysfs=sysfs)


def row(tmp_path: Path, run: Runner | None = None, **tree: object) -> Check:
    sysfs = fake_sysfs(tmp_path / "sys", **tree)  # type: ignore[arg-type]
    [got] = watchdog.check_watchdog(_ctx(tmp_path, run or pid1("14s"), sysfs))
    return got


def test_an_armed_watchdog_fed_by_pid_1_passes(tmp_path: Path) -> None:
    got = row(tmp_path)
    assert got.status == "pass"
    assert (
        got.detail
        == "Broadcom BCM2835 Watchdog timer active, hardware timeout 14 s, fed by PID 1 (14 s)"
    )


def test_a_watchdog_pid_1_does_not_feed_fails_and_says_how_to_arm_it(tmp_path: Path) -> None:
    got = row(tmp_path, pid1("0"), state="inactive")
    assert got.status == "fail" and "PID 1 does not feed the watchdog" in got.detail
    assert "kiosk-watchdog.conf" in got.fix and "systemctl daemon-reexec" in got.fix


def test_a_watchdog_the_kernel_did_not_arm_fails(tmp_path: Path) -> None:
    got = row(tmp_path, pid1("14s"), state="inactive")
    assert got.status == "fail" and "is inactive although PID 1 asks for 14 s" in got.detail
    assert "dmesg | grep -i watchdog" in got.fix


def test_a_timeout_beyond_the_socs_limit_fails_before_it_bites(tmp_path: Path) -> None:
    """systemd#27427: a value the BCM2835 cannot hold may leave no watchdog at all."""
    got = row(tmp_path, pid1("1min"), max_timeout=15)
    assert got.status == "fail" and "tops out at 15 s" in got.detail
    assert "at most 14s" in got.fix


def test_a_raspberry_pi_without_a_watchdog_device_fails_naming_the_driver(tmp_path: Path) -> None:
    got = row(tmp_path, present=False)
    assert got.status == "fail" and "no watchdog device" in got.detail
    assert "dtparam=watchdog=on" in got.fix


@pytest.mark.parametrize(
    ("tree", "said"),
    [
        ({"supported": False, "model": None}, "no /sys/class/watchdog"),  # a container
        ({"present": False, "model": None}, "no watchdog device"),  # a laptop: class, no driver
    ],
)
def test_no_watchdog_where_none_is_expected_only_warns(
    tmp_path: Path, tree: dict[str, object], said: str
) -> None:
    got = row(tmp_path, pid1("0"), **tree)
    assert got.status == "warn" and said in got.detail
    assert "a container or a development machine" in got.detail


def test_without_systemd_pid_1_cannot_be_asked_and_that_is_a_warning(tmp_path: Path) -> None:
    got = row(tmp_path, pid1(None))
    assert got.status == "warn" and "PID 1 cannot be asked" in got.detail


def test_a_kernel_that_hides_the_state_warns(tmp_path: Path) -> None:
    got = row(tmp_path, state=None)
    assert got.status == "warn" and "does not show its state" in got.detail


def test_the_doctor_has_the_row_after_the_units(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, pid1("0"), fake_sysfs(tmp_path / "sys", state="inactive"))
    rows = doctor.run_checks(ctx, doctor.UNIT_CHECKS)
    names = [r.name for r in rows]
    assert "watchdog" in names and rows[names.index("watchdog")].status == "fail"
    assert exit_status(rows) == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("14s", 14.0), ("1min 30s", 90.0), ("500ms", 0.5), ("0", 0.0), ("14000000", 14.0),
     ("infinity", math.inf), ("soon", None), ("", None)],
)  # fmt: skip
def test_systemd_time_spans_are_read(text: str, seconds: float | None) -> None:
    assert watchdog.parse_timespan(text) == seconds


def test_pid_1_at_the_drivers_default_timeout_is_fed(tmp_path: Path) -> None:
    got = row(tmp_path, pid1("infinity"))
    assert got.status == "pass" and "the driver's default" in got.detail


# --- the update's self-test ----------------------------------------------------------------


def selftest_row(ctx: Context) -> Check:
    return next(r for r in selftest.gather(ctx) if r.name == "watchdog")


def test_an_update_is_rejected_for_the_watchdog_only_if_it_had_worked_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A board whose watchdog has never been armed would reject every update (security fixes
    included) if the row failed; going back would not arm it. So there it warns; once it has
    been armed on this kiosk, an update that loses it fails its trial and is rolled back."""
    monkeypatch.setattr(selftest.health, "candidates", lambda d: [tmp_path / "no-report.json"])
    broken = fake_sysfs(tmp_path / "broken", present=False)  # the driver is missing
    armed = fake_sysfs(tmp_path / "armed")
    never = _ctx(tmp_path, pid1("14s"), broken)
    got = selftest_row(never)
    assert got.status == "warn" and "never armed on this kiosk" in got.detail
    assert "dtparam=watchdog=on" in got.fix
    assert not (tmp_path / "data" / watchdog.MARKER).exists()

    assert selftest_row(_ctx(tmp_path, pid1("14s"), armed)).status == "pass"
    assert (tmp_path / "data" / watchdog.MARKER).exists()  # on the data partition: both slots

    # the next update's kernel has no driver, or its root lost the drop-in: rejected
    assert selftest_row(_ctx(tmp_path, pid1("14s"), broken)).status == "fail"
    assert selftest_row(_ctx(tmp_path, pid1("0"), armed)).status == "fail"


def test_the_self_test_warns_off_the_kiosk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest.health, "candidates", lambda d: [tmp_path / "no-report.json"])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / watchdog.MARKER).write_text("armed\n")
    laptop = fake_sysfs(tmp_path / "sys", present=False, model=None)
    assert selftest_row(_ctx(tmp_path, pid1(None), laptop)).status == "warn"
