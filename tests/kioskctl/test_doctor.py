"""``kioskctl doctor``: every check passes on a healthy simulated kiosk, and each one fails
for its real reason, saying the fix."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from daemon import growdata
from daemon import outbox as outbox_mod
from daemon.clock import FakeClock
from daemon.kioskctl.parts import (
    Parts,
    RunResult,
    default_camera,
    default_gpio,
    default_sound_cards,
)
from daemon.sync import ROSTER_STATUS
from drivers.camera import GatedCamera, camera_sim
from drivers.camera.interface import CameraSettings
from drivers.gpio import GpioBoard, GpioSettings, GpioSim
from hil import pki as pkimod
from hil.fingerprint import SensorEmulator
from hil.refapi.testing import roster_doc
from tests.kioskctl.conftest import Kiosk

GB = 1024**3


def doctor(
    kiosk: Kiosk, *extra: str, parts: Parts | None = None
) -> tuple[int, dict[str, dict[str, str]]]:
    code, out, _err = kiosk.run("doctor", "--json", *extra, parts=parts)
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    return code, rows


def test_healthy_kiosk_passes_every_check_and_prints_a_table(kiosk: Kiosk) -> None:
    code, rows = doctor(kiosk)
    failing = {n: r for n, r in rows.items() if r["status"] == "fail"}
    assert code == 0, failing
    for name in ("key", "key permissions", "key enrolment", "disk", "outbox integrity",
                 "outbox queue", "clock", "api dns", "api tls", "clock skew", "api enrolment",
                 "sensor", "sensor baud", "sensor library", "camera", "gpio", "tamper switch",
                 "display", "touch", "spoken prompts", "sound"):  # fmt: skip
        assert rows[name]["status"] == "pass", rows[name]
    assert "valid until" in rows["api tls"]["detail"]
    assert rows["systemd"]["status"] == "warn"  # no systemd in the test machine: said so
    # nor PID 1 to ask about the hardware watchdog (tests/kioskctl/test_watchdog.py has the rest)
    assert rows["watchdog"]["status"] == "warn"
    code, out, _err = kiosk.run("doctor")
    assert code == 0
    assert "PASS  sensor" in out and "WARN  systemd" in out and "0 failed" in out


def test_sensor_unplugged(kiosk: Kiosk) -> None:
    kiosk.emulator.unplug()
    code, rows = doctor(kiosk)
    assert code == 1
    assert rows["sensor"]["status"] == "fail"
    assert "cannot be opened" in rows["sensor"]["detail"]
    assert "cable" in rows["sensor"]["fix"]


def test_sensor_at_the_wrong_baud_is_found_and_the_fix_named(kiosk: Kiosk, tmp_path: Path) -> None:
    with SensorEmulator("R503", time_scale=0, baud=19200) as emu:
        kiosk.edit("fingerprint", port=emu.start_pty(tmp_path / "ttyFP19k2"))
        code, rows = doctor(kiosk, "--no-hardware")
        assert "sensor" not in rows  # --no-hardware leaves the parts alone
        code, rows = doctor(kiosk)
        assert code == 1
        row = rows["sensor baud"]
        assert row["status"] == "fail"
        assert "answers at 19200 baud" in row["detail"]
        assert "kioskctl sensor set-baud 57600 --from 19200" in row["fix"]
        # following the fix makes the check pass
        code, _out, err = kiosk.run("sensor", "set-baud", "57600", "--from", "19200")
        assert code == 0, err
        assert emu.baud == 57600
        code, rows = doctor(kiosk)
        assert rows["sensor"]["status"] == "pass" and rows["sensor baud"]["status"] == "pass"


def test_templates_in_the_sensor_library_fail(kiosk: Kiosk) -> None:
    kiosk.emulator.library[5] = bytes(512)
    code, rows = doctor(kiosk)
    assert code == 1
    assert rows["sensor library"]["status"] == "fail"
    assert "kioskctl sensor clear-library" in rows["sensor library"]["fix"]
    code, out, _err = kiosk.run("sensor", "clear-library", "--yes")
    assert code == 0 and "1 templates erased" in out
    assert kiosk.emulator.library == {}


@contextlib.contextmanager
def missing_camera(settings: CameraSettings) -> Iterator[GatedCamera]:
    """The simulated camera with its ribbon cable out."""
    from drivers.camera import SyntheticCamera

    source = SyntheticCamera(settings.width, settings.height)
    source.unplug()
    camera = GatedCamera(source, settings)
    camera.open()  # raises CameraNotFound, as the real one does
    yield camera


@contextlib.contextmanager
def dark_camera(settings: CameraSettings) -> Iterator[GatedCamera]:
    from drivers.camera import Shot

    with default_camera(settings) as camera:
        camera_sim(camera).script([Shot.DARK, Shot.DARK])
        yield camera


def test_camera_missing(kiosk: Kiosk) -> None:
    code, rows = doctor(kiosk, parts=replace(kiosk.parts, camera=missing_camera))
    assert code == 1
    assert rows["camera"]["status"] == "fail"
    assert "no camera" in rows["camera"]["detail"]
    assert "ribbon cable" in rows["camera"]["fix"]


def test_camera_exposure_not_sane_warns(kiosk: Kiosk) -> None:
    code, rows = doctor(kiosk, parts=replace(kiosk.parts, camera=dark_camera))
    assert code == 0
    assert rows["camera"]["status"] == "warn" and "too_dark" in rows["camera"]["detail"]
    assert "lighting" in rows["camera"]["fix"]


def test_missing_or_broken_spoken_prompts_fail_naming_the_fix(kiosk: Kiosk) -> None:
    """A kiosk installed without its prompts (an image built without espeak-ng, a folder
    wiped) has silent Listen buttons: a person who cannot read gets nothing. Doctor fails,
    says how many and which, and how to make them."""
    prompts = kiosk.parts.prompts_dir
    (prompts / "cy" / "lost.wav").write_bytes(b"RIFF\0\0")  # cut short
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    row = rows["spoken prompts"]
    assert row["status"] == "fail" and "1 of 24 missing or unreadable" in row["detail"]
    assert "cy/lost.wav" in row["detail"] and "Listen buttons are silent" in row["detail"]
    assert f"python -m daemon.ui.audio --out {prompts}" in row["fix"]
    code, rows = doctor(
        kiosk, "--no-hardware", parts=replace(kiosk.parts, prompts_dir=prompts / "x")
    )
    assert code == 1 and "24 of 24 missing" in rows["spoken prompts"]["detail"]


def test_speech_engine_missing_is_a_warning_saying_what_listen_still_does(kiosk: Kiosk) -> None:
    """Without espeak-ng the fixed prompts still play; a screen's own words do not."""
    _code, rows = doctor(kiosk, "--no-hardware")  # this test kiosk's runner finds no program
    row = rows["speech engine"]
    assert row["status"] == "warn" and "fixed prompt only" in row["detail"]
    assert "apt install espeak-ng" in row["fix"]

    def with_espeak(argv: list[str], timeout_s: float) -> RunResult:
        return (0, "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/espeak-ng-data\n")

    _code, rows = doctor(kiosk, "--no-hardware", parts=replace(kiosk.parts, run=with_espeak))
    assert rows["speech engine"] == {
        "name": "speech engine",
        "status": "pass",
        "detail": "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/espeak-ng-data",
        "fix": rows["speech engine"]["fix"],
    }


def test_no_sound_card_fails_pointing_at_the_audio_adapter(kiosk: Kiosk, tmp_path: Path) -> None:
    code, rows = doctor(kiosk, parts=replace(kiosk.parts, sound_cards=list))
    assert code == 1
    assert rows["sound"]["status"] == "fail" and "nothing the kiosk says" in rows["sound"]["detail"]
    assert "USB audio adapter" in rows["sound"]["fix"]
    # what the default reads: the kernel's cards under /sys/class/sound, by their ids
    for n, name in ((1, "Device"), (0, "vc4hdmi")):
        (tmp_path / "sys" / "class" / "sound" / f"card{n}").mkdir(parents=True)
        (tmp_path / "sys" / "class" / "sound" / f"card{n}" / "id").write_text(name + "\n")
    (tmp_path / "sys" / "class" / "sound" / "controlC0").mkdir()  # not a card
    assert default_sound_cards(tmp_path / "sys") == ["vc4hdmi", "Device"]
    assert default_sound_cards(tmp_path / "nothing") == []


def test_a_default_output_on_hdmi_is_found_and_the_adapter_named(kiosk: Kiosk) -> None:
    """On a Pi the HDMI outputs are cards 0 and 1 and ALSA plays to card 0: the adapter is
    there but the kiosk would be silent. Only HDMI cards: the adapter is missing."""
    hdmi_first = replace(kiosk.parts, sound_cards=lambda: ["vc4hdmi0", "vc4hdmi1", "Device"])
    code, rows = doctor(kiosk, "--no-hardware", parts=hdmi_first)
    assert code == 0  # a warning: a setting to make, not a part to replace
    row = rows["sound"]
    assert row["status"] == "warn" and "card 0, vc4hdmi0 (HDMI), not Device" in row["detail"]
    assert "`defaults.pcm.card Device`" in row["fix"] and "/etc/asound.conf" in row["fix"]
    only_hdmi = replace(kiosk.parts, sound_cards=lambda: ["vc4hdmi0", "vc4hdmi1"])
    code, rows = doctor(kiosk, "--no-hardware", parts=only_hdmi)
    assert code == 1 and rows["sound"]["status"] == "fail"
    assert "(only HDMI: vc4hdmi0, vc4hdmi1)" in rows["sound"]["detail"]
    assert "USB audio adapter" in rows["sound"]["fix"]


@contextlib.contextmanager
def open_enclosure(settings: GpioSettings) -> Iterator[GpioBoard]:
    with default_gpio(settings) as board:
        GpioSim(board).open_enclosure()
        yield board


def test_tamper_switch_open(kiosk: Kiosk) -> None:
    code, rows = doctor(kiosk, parts=replace(kiosk.parts, gpio=open_enclosure))
    assert code == 1
    assert rows["tamper switch"]["status"] == "fail"
    assert "close the enclosure" in rows["tamper switch"]["fix"]


@contextlib.contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    """A loopback TLS server presenting ``cert`` (handshakes only); yields its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True):
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_expired_api_certificate(kiosk: Kiosk, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    pki = pkimod.create(
        tmp_path / "expired-pki", server_days=1, server_not_before=now - dt.timedelta(days=3)
    )
    with tls_server(pki.server_cert, pki.server_key) as port:
        kiosk.edit("api", url=f"https://127.0.0.1:{port}/", ca_bundle=str(pki.ca_cert))
        code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    row = rows["api tls"]
    assert row["status"] == "fail"
    expired_on = (now - dt.timedelta(days=2)).strftime("%Y-%m-%d")
    assert f"expired on {expired_on}" in row["detail"]
    assert "renew" in row["fix"]
    assert "clock skew" not in rows  # nothing more is asked of a server we cannot trust


def test_api_unreachable(kiosk: Kiosk) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    kiosk.edit("api", url=f"https://127.0.0.1:{port}/")
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    assert rows["api tls"]["status"] == "fail" and "cannot connect" in rows["api tls"]["detail"]
    assert "firewall" in rows["api tls"]["fix"]


def test_clock_skew_from_the_servers_date_header(kiosk: Kiosk) -> None:
    kiosk.clock.step_wall(3600)  # the kiosk's clock is an hour fast
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    row = rows["clock skew"]
    assert row["status"] == "fail"
    skew = int(re.search(r"(\d+) s ahead of the API", row["detail"])[1])  # type: ignore[index]
    assert 3590 <= skew <= 3610  # the fake clock stands still while the test runs
    assert "timedatectl" in row["fix"]
    assert rows["api enrolment"]["status"] == "fail"
    assert "clock" in rows["api enrolment"]["detail"]


def test_unsynchronised_clock_warns(kiosk: Kiosk) -> None:
    kiosk.clock.set_synced(False)
    _code, rows = doctor(kiosk, "--no-hardware")
    assert rows["clock"]["status"] == "warn" and "NTP" in rows["clock"]["fix"]


def test_full_disk(kiosk: Kiosk) -> None:
    kiosk.edit("outbox", min_free_mb=50_000_000)  # a reserve larger than any free space
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    assert rows["disk"]["status"] == "fail"
    assert "new check-ins are refused" in rows["disk"]["detail"]
    assert "sent to reception" in rows["disk"]["detail"]
    assert "free space" in rows["disk"]["fix"]


def _week_of_checkins(kiosk: Kiosk, photo: int) -> None:
    """14 check-ins over the past week, each with a sealed photo of ``photo`` bytes."""
    kiosk.clock.advance(-7 * 86400 + 3600)
    with kiosk.outbox() as ob:
        for i in range(14):
            ob.append("checkin", {"person": f"CR-9{i:05d}"}, blob=os.urandom(photo))
            kiosk.clock.advance(12 * 3600)


def _free_mb(kiosk: Kiosk) -> int:
    st = os.statvfs(kiosk.cfg.device.data_dir)
    return st.f_bavail * st.f_frsize // (1024 * 1024)


def test_disk_running_low_warns_with_the_days_left_at_the_recent_rate(kiosk: Kiosk) -> None:
    _week_of_checkins(kiosk, photo=512 * 1024)
    free = _free_mb(kiosk)
    # photos stop 100 MB below today's free space; staff are told from far above it
    kiosk.edit("outbox", min_free_mb=64, no_photo_free_mb=free - 100, low_free_mb=free + 100_000)
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["disk"]
    assert row["status"] == "warn", row  # a warning: check-ins go on
    assert f"Below {free + 100_000} MB: staff have been told" in row["detail"]
    found = re.search(r"about (\d+) days until photos stop at the recent rate \(2 check-ins and "
                      r"(\d+\.\d) MB a day over 7 days\)", row["detail"])  # fmt: skip
    assert found, row["detail"]
    assert found[2] == "1.0"  # two half-megabyte photos a day, and their small records
    assert 90 <= int(found[1]) <= 110  # 100 MB at ~1 MB a day: other writers move it a little
    assert "kioskctl sync" in row["fix"]


def test_photos_stopped_warns_and_counts_the_days_until_check_ins_stop(kiosk: Kiosk) -> None:
    _week_of_checkins(kiosk, photo=64 * 1024)
    free = _free_mb(kiosk)
    kiosk.edit("outbox", min_free_mb=64, no_photo_free_mb=free + 100_000)
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["disk"]
    assert row["status"] == "warn", row  # a warning: check-ins go on
    assert "check-ins are saved without photos" in row["detail"]
    # records alone, a few hundred bytes a day: years of room
    assert "more than 999 days until check-ins stop" in row["detail"]


def test_a_quiet_kiosk_has_no_rate_to_estimate_from(kiosk: Kiosk) -> None:
    _week_of_checkins(kiosk, photo=1024)
    kiosk.clock.advance(30 * 86400)  # a month with nobody reporting here
    _code, rows = doctor(kiosk, "--no-hardware")
    assert rows["disk"]["status"] == "pass"
    assert "no check-ins in the last 7 days" in rows["disk"]["detail"]


def _card_sysfs(tmp_path: Path, data: Path, part_bytes: int, disk_bytes: int) -> Path:
    """A sysfs in which ``data`` lives on mmcblk0p7, the last partition of an SD card."""
    dev = os.stat(data).st_dev
    disk = tmp_path / "sys" / "devices" / "mmc0" / "block" / "mmcblk0"
    part = disk / "mmcblk0p7"
    part.mkdir(parents=True)
    start = 6 * 1024 * 1024 * 1024 // 512
    (disk / "size").write_text(f"{start + disk_bytes // 512}\n")
    (part / "partition").write_text("7\n")
    (part / "start").write_text(f"{start}\n")
    (part / "size").write_text(f"{part_bytes // 512}\n")
    links = tmp_path / "sys" / "dev" / "block"
    links.mkdir(parents=True)
    (links / f"{os.major(dev)}:{os.minor(dev)}").symlink_to(part)
    return tmp_path / "sys"


def test_a_data_partition_that_did_not_grow_on_first_boot_is_named(
    kiosk: Kiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = kiosk.cfg.device.data_dir
    fs = os.statvfs(data).f_blocks * os.statvfs(data).f_frsize
    # the card is 24 GB bigger than the partition: kiosk-grow-data did not run or failed
    monkeypatch.setattr(growdata, "SYSFS", _card_sysfs(tmp_path / "a", data, fs, fs + 24 * GB))
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["data partition"]
    assert row["status"] == "warn" and "24576 MB of the card unused" in row["detail"]
    assert "kiosk-grow-data" in row["fix"]
    # the partition grew, its file system did not (x-systemd.growfs did not run)
    monkeypatch.setattr(growdata, "SYSFS", _card_sysfs(tmp_path / "b", data, 2 * fs, 2 * fs))
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["data partition"]
    assert row["status"] == "warn" and "its file system is" in row["detail"]
    assert "systemd-growfs@data.service" in row["fix"]
    # both grew: the partition ends at the end of the card, the file system fills it
    monkeypatch.setattr(growdata, "SYSFS", _card_sysfs(tmp_path / "c", data, fs, fs))
    _code, rows = doctor(kiosk, "--no-hardware")
    assert rows["data partition"]["status"] == "pass"
    assert "fills the card" in rows["data partition"]["detail"]


def test_an_outbox_migrated_by_a_rolled_back_update_is_a_warning_not_a_failure(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:  # the update's trial boot migrated the outbox
        now = outbox_mod.SCHEMA_VERSION
        m.setattr(outbox_mod, "SCHEMA_VERSION", now + 1)
        m.setitem(outbox_mod._MIGRATIONS, now + 1, "CREATE TABLE future_notes (seq INTEGER)")
        m.setitem(outbox_mod.READABLE_BY, now + 1, now)
        dev = kiosk.cfg.device
        outbox_mod.Outbox(dev.data_dir, device=dev.id, key=None, clock=FakeClock()).open().close()
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["outbox integrity"]
    assert row["status"] == "warn", row
    assert f"schema {outbox_mod.SCHEMA_VERSION + 1}, made by newer software" in row["detail"]
    assert "rolled back" in row["fix"]
    assert rows["outbox queue"]["status"] == "pass"  # the old software reads the queue


def test_the_receipt_printer_row_appears_only_when_there_is_one(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    _code, rows = doctor(kiosk)
    assert "printer" not in rows  # none configured: optional hardware, no row
    kiosk.edit("device", allow_simulated=True)
    kiosk.edit("printer", backend="simulated")
    _code, rows = doctor(kiosk)
    assert rows["printer"]["status"] == "pass" and "paper ok" in rows["printer"]["detail"]
    kiosk.edit("printer", backend="escpos", device=str(tmp_path / "lp0"))
    code, rows = doctor(kiosk)
    assert rows["printer"]["status"] == "fail" and code == 1
    assert "USB cable" in rows["printer"]["fix"] and "without slips" in rows["printer"]["fix"]


def test_wrong_key_permissions(kiosk: Kiosk) -> None:
    kiosk.cfg.device.key_path.chmod(0o644)
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    row = rows["key permissions"]
    assert row["status"] == "fail" and "0644" in row["detail"]
    assert f"chmod 600 {kiosk.cfg.device.key_path}" in row["fix"]


def test_key_that_is_not_the_enrolled_one(kiosk: Kiosk) -> None:
    from daemon.keys import FileKeyBackend

    FileKeyBackend(kiosk.cfg.device.key_path).create(overwrite=True)  # swapped behind our back
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    assert rows["key enrolment"]["status"] == "fail"
    assert rows["api enrolment"]["status"] == "fail"  # the API refuses the signature too
    assert "provision --force" in rows["key enrolment"]["fix"]


def test_parked_records_and_corrupt_outbox(kiosk: Kiosk) -> None:
    with kiosk.outbox() as outbox:
        rec = outbox.append("boot", {})
        outbox.resolve(rec.seq, {rec.seq: "schema"})
    _code, rows = doctor(kiosk, "--no-hardware")
    assert rows["outbox parked"]["status"] == "warn"
    assert "kioskctl outbox list --parked" in rows["outbox parked"]["fix"]
    db = kiosk.cfg.device.data_dir / "outbox.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 500)  # a card that lost the file
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1
    assert rows["outbox integrity"]["status"] == "fail"
    assert "salvages every record" in rows["outbox integrity"]["fix"]


def test_a_set_aside_outbox_stays_on_the_report_until_someone_deals_with_it(
    kiosk: Kiosk,
) -> None:
    _code, rows = doctor(kiosk, "--no-hardware")
    assert "outbox set aside" not in rows
    aside = kiosk.cfg.device.data_dir / "corrupt" / "20261123T091502Z"
    aside.mkdir(parents=True)  # what kiosk.service leaves after salvaging a damaged outbox
    _code, rows = doctor(kiosk, "--no-hardware")
    row = rows["outbox set aside"]
    assert row["status"] == "warn" and "20261123T091502Z" in row["detail"]
    assert "central team" in row["fix"]


def test_the_roster_rows_say_what_kiosk_sync_could_not_take(kiosk: Kiosk) -> None:
    """No roster yet; one kept after the API's latest was refused, with an entry left out;
    a file the kiosk cannot use at all. Never a person's reference in the rows."""
    data = kiosk.cfg.device.data_dir
    _code, rows = doctor(kiosk, "--no-hardware")
    assert rows["roster"]["status"] == "warn" and "no roster yet" in rows["roster"]["detail"]
    roster = roster_doc("CR-000101", "CR-000102", "CR-000103")
    roster["people"][1]["messages"] = [{"id": "m1", "en": "Bring ID.", "cy": ""}]
    (data / "roster.json").write_text(json.dumps(roster))
    refused = {"reason": "roster_invalid", "field": "roster.dob_salt", "what": "must be at "
               "least 16 bytes", "at": "2026-11-23T09:00:00Z", "etag": '"abc"'}  # fmt: skip
    (data / ROSTER_STATUS).write_text(json.dumps({"refused": refused, "dropped": []}))
    code, rows = doctor(kiosk, "--no-hardware")
    assert rows["roster"]["status"] == "warn"
    assert "refused since 2026-11-23T09:00:00Z" in rows["roster"]["detail"]
    assert "roster.dob_salt" in rows["roster"]["detail"]
    assert "previous one (2 people" in rows["roster"]["detail"]
    assert "service desk" in rows["roster"]["fix"]
    left_out = rows["roster entries"]
    assert left_out["status"] == "warn" and "people[1].messages[0].cy" in left_out["detail"]
    (data / "roster.json").write_text('{"office": "x"}')
    code, rows = doctor(kiosk, "--no-hardware")
    assert code == 1 and rows["roster"]["status"] == "fail"
    assert "roster.generated_at" in rows["roster"]["detail"]
    assert "CR-0001" not in json.dumps(rows)


def failed_unit(argv: list[str], timeout_s: float) -> RunResult:
    if argv[:2] == ["systemctl", "show"] and argv[2] == "kiosk-sync.service":
        return 0, ("LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=watchdog\n"
                   "NRestarts=5\nExecMainStatus=0\n")  # fmt: skip
    return (
        0,
        "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n",
    )


def test_failed_systemd_unit(kiosk: Kiosk) -> None:
    code, rows = doctor(kiosk, "--no-hardware", parts=replace(kiosk.parts, run=failed_unit))
    assert code == 1
    assert rows["kiosk"]["status"] == "pass"
    row = rows["kiosk-sync"]
    assert row["status"] == "fail" and "watchdog" in row["detail"]
    assert "systemctl restart kiosk-sync.service" in row["fix"]


def test_table_puts_the_fix_under_a_failure(kiosk: Kiosk) -> None:
    key = kiosk.cfg.device.key_path
    key.chmod(0o644)
    code, out, _err = kiosk.run("doctor", "--no-hardware")
    assert code == 1
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("FAIL  key permissions"))
    assert "mode 0644" in lines[at]
    assert "fix: chmod 600" in " ".join(lines[at + 1 : at + 4])
    assert lines[-1].endswith("2 failed")  # and the API cannot be asked with that key
