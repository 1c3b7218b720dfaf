"""``kioskctl bundle``: the diagnostics archive holds the useful parts and no personal data."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import replace

import pytest

from daemon.kioskctl.bundle import Scrubber
from daemon.kioskctl.parts import RunResult
from daemon.kioskctl.progress import Progress
from tests.kioskctl.conftest import Kiosk

CASE_REF = "CR-123456"
ANSWER = "I moved in with my sister at 12 Acacia Road"
ROSTER_REF = "CR-777001"
ROSTER_MESSAGE = "Please bring your payslips on Tuesday"
EMAIL = "jo.bloggs@example.org"
PHONE = "07700 900123"
BIRTH_DATE = "1990-04-17"
PLANTED = [CASE_REF, ANSWER, ROSTER_REF, ROSTER_MESSAGE, EMAIL, PHONE, BIRTH_DATE]


def journal_with_personal_data(argv: list[str], timeout_s: float) -> RunResult:
    if argv[0] == "journalctl" and "-b" in argv:  # the previous boot: the one that went wrong
        return 0, (
            "2026-11-22T18:01:10+0000 systemd[1]: kiosk.service: Watchdog timeout (limit 20s)!\n"
            f"2026-11-22T18:00:58+0000 kiosk[377]: verify failed for {CASE_REF} ({PHONE})\n"
        )
    if argv[0] == "journalctl":
        return 0, (
            "2026-11-23T09:15:02+0000 kiosk[412]: fingerprint sensor reconnected\n"
            f"2026-11-23T09:15:03+0000 kiosk[412]: check-in for {CASE_REF} answered {ANSWER!r}\n"
            f"2026-11-23T09:15:04+0000 kiosk[412]: staff note {EMAIL} {PHONE} dob {BIRTH_DATE}\n"
        )
    return None


def test_bundle_holds_no_personal_data(kiosk: Kiosk) -> None:
    with kiosk.outbox() as outbox:
        outbox.append("checkin", {"person": CASE_REF, "answers": {"moved": ANSWER}})
    kiosk.edit("device", office=CASE_REF)  # planted where it does not belong
    kiosk.edit("staff", pin_hash="pbkdf2$1000$c2FsdA$aGFzaA")
    roster = {
        "people": [
            {
                "ref": ROSTER_REF,
                "messages": [{"id": "m1", "en": ROSTER_MESSAGE, "cy": "Dewch a'ch slipiau cyflog"}],
            }
        ]
    }
    (kiosk.cfg.device.data_dir / "roster.json").write_text(json.dumps(roster))
    from daemon import health

    health.write(kiosk.cfg.device.data_dir / health.FILE,
                 {"at": 1.0, "faults": {"camera": "camera_blank"}, "busy": False})  # fmt: skip
    app_log = kiosk.folder / "kiosk-ui.log"
    app_log.write_text(f"ui: screen done for {ROSTER_REF} ({ROSTER_MESSAGE})\nui: idle\n")
    target = kiosk.folder / "out" / "bundle.tar.gz"

    code, out, err = kiosk.run(
        "bundle", "--out", str(target), "--log-file", str(app_log),
        parts=replace(kiosk.parts, run=journal_with_personal_data),
    )  # fmt: skip
    assert code == 0, err
    assert "personal values removed" in out

    with tarfile.open(target, "r:gz") as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(members) == {
        "doctor.json", "figures.json", "outbox-summary.txt", "config.toml",
        "logs/journal.txt", "logs/previous-boot.txt", "logs/kiosk-ui.log.txt", "manifest.json",
    }  # fmt: skip
    everything = b"\n".join(members.values())
    for planted in PLANTED:
        assert planted.encode() not in everything, planted
    assert b"PRIVATE KEY" not in everything
    assert b"pbkdf2$" not in everything
    assert b"eyJ" not in everything  # no record (compact JWS) at all
    # ...while what an engineer needs is still there
    journal = members["logs/journal.txt"].decode()
    assert "fingerprint sensor reconnected" in journal
    assert "2026-11-23T09:15:03+0000" in journal  # timestamps are not mistaken for birth dates
    assert "ui: idle" in members["logs/kiosk-ui.log.txt"].decode()
    assert "Watchdog timeout" in members["logs/previous-boot.txt"].decode()
    summary = members["outbox-summary.txt"].decode()
    assert "checkin" in summary and "enrolment" in summary
    figures = json.loads(members["figures.json"])
    assert figures["outbox"]["depth"] == 2
    assert figures["health"]["faults"] == {"camera": "camera_blank"}  # the kiosk's last word
    assert figures["slots"] is None  # not an A/B card
    doctor_rows = {r["name"]: r["status"] for r in json.loads(members["doctor.json"])}
    assert doctor_rows["api tls"] == "pass"
    assert f'id = "{kiosk.cfg.device.id}"' in members["config.toml"].decode()


def _bundle(kiosk: Kiosk, run: Callable[[list[str], float], RunResult]) -> dict[str, str]:
    target = kiosk.folder / "out" / "bundle.tar.gz"
    code, _out, err = kiosk.run("bundle", "--out", str(target), parts=replace(kiosk.parts, run=run))
    assert code == 0, err
    with tarfile.open(target, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers()}  # fmt: skip


def test_the_previous_boot_is_asked_of_the_journal_in_its_own_order(kiosk: Kiosk) -> None:
    """After a watchdog reset or a failed trial, the boot that went wrong: `-b -1` (the
    journal's own sequence, not a wall clock the Pi may not have had), its kiosk and boot-time
    units, PID 1 and the kernel; not capped by a time window."""
    asked: list[list[str]] = []

    def run(argv: list[str], timeout_s: float) -> RunResult:
        asked.append(argv)
        if "-b" in argv:
            return 0, "2026-11-22T18:01:10+0000 systemd[1]: Reached target reboot.target\n"
        return 0, ""

    members = _bundle(kiosk, run)
    assert "Reached target reboot.target" in members["logs/previous-boot.txt"]
    (previous,) = [a for a in asked if "-b" in a]
    assert previous[previous.index("-b") + 1] == "-1"
    assert "--since" not in previous and "--merge" not in previous  # 252 refuses -b with it
    groups = " ".join(previous).split(" + ")
    units = set(re.findall(r"_SYSTEMD_UNIT=(\S+)", groups[0]))
    assert {"kiosk.service", "kiosk-sync.service", "kiosk-ui.service",
            "kiosk-boot-check.service", "rauc.service"} <= units  # fmt: skip
    assert groups[1:] == ["_PID=1", "_TRANSPORT=kernel"]


def test_without_an_earlier_boot_the_bundle_lists_the_boots_on_the_data_partition(
    kiosk: Kiosk,
) -> None:
    boots = (  # journalctl 252 --list-boots
        "IDX BOOT ID                          FIRST ENTRY                 LAST ENTRY\n"
        " -1 84c80173fa454f80bb5dcab826282d70 Mon 2026-11-23 19:38:58 UTC "
        "Mon 2026-11-23 19:39:00 UTC\n"
        "  0 4b51fb3d6c5b4138878d83716ad3f8df Mon 2026-11-23 19:39:00 UTC "
        "Mon 2026-11-23 19:39:03 UTC\n"
    )

    def run(argv: list[str], timeout_s: float) -> RunResult:
        if "-b" in argv:
            return 1, ""  # "Data from the specified boot (-1) is not available"
        if "--list-boots" in argv:
            assert argv[argv.index("-D") + 1] == "/var/log/journal"  # every machine ID's
            return 0, boots
        return 0, ""

    log = _bundle(kiosk, run)["logs/previous-boot.txt"]
    assert log.startswith("(no earlier boot under this machine ID")
    # boot IDs and times are not personal, and the times are not taken for birth dates
    assert " -1 84c80173fa454f80bb5dcab826282d70 Mon 2026-11-23T19:38:58 UTC" in log
    assert "journalctl -D /var/log/journal -b BOOT_ID" in log

    def volatile(argv: list[str], timeout_s: float) -> RunResult:
        return (1, "") if "-b" in argv or "--list-boots" in argv else (0, "")

    assert _bundle(kiosk, volatile)["logs/previous-boot.txt"].startswith("(no earlier boot")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_only_on_a_terminal_after_the_delay() -> None:
    now = [0.0]
    tty = FakeTty()
    with Progress("export", 4, stream=tty, monotonic=lambda: now[0]) as bar:
        bar.advance()  # quick work draws nothing
        now[0] = 1.0
        bar.advance()
        now[0] = 2.0
        bar.advance(2)
    text = tty.getvalue()
    assert "export [" in text and "4/4 100%" in text and text.endswith("\n")
    assert "1/4" not in text  # nothing before the delay

    pipe = io.StringIO()
    with Progress("export", 4, stream=pipe, monotonic=lambda: now[0]) as bar:
        now[0] = 10.0
        bar.advance(4)
    assert pipe.getvalue() == ""


@pytest.mark.parametrize(
    "personal",
    [
        "14/03/1985", "14-3-85", "14.03.1985", "14 March 1985", "3rd Mar 1990",
        "March 14, 1985", "14 Mawrth 1985", "CF10 1AA", "sw1a2aa", "QQ123456C",
        "QQ 12 34 56 C",
    ],
)  # fmt: skip
def test_a_free_text_log_loses_dates_postcodes_and_ni_numbers(personal: str) -> None:
    scrub = Scrubber()
    line = f"2026-11-23T09:15:02+0000 kiosk-ui[88]: typed {personal} into the wrong box"
    assert scrub(line) == (
        "2026-11-23T09:15:02+0000 kiosk-ui[88]: typed [removed] into the wrong box"
    )


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("Authorization: Bearer s3cr3t.tok-en", "Authorization: Bearer [removed]"),
        ("pin=4817 password: hunter2", "pin=[removed] password: [removed]"),
        ('{"token": "abc123", "admin_token":"xyz"}',
         '{"token": "[removed]", "admin_token":"[removed]"}'),
    ],
)  # fmt: skip
def test_credentials_lose_their_value_and_keep_their_name(line: str, kept: str) -> None:
    assert Scrubber()(line) == kept


def test_what_an_engineer_reads_in_a_log_survives_the_scrubbing() -> None:
    text = (
        "2026-11-23T09:15:02+0000 kiosk-sync[41]: 12 accepted in 0.31 s; version 1.2.3; "
        "kiosk 1.4.12, update to 2.1.20; "
        "10.0.0.1 port 8443; seq 1234; schema 3/3; 5/5 ok\n"
        "the staff PIN was refused; pin lockout for 300 s; token expired; spin=3\n"
        # boot and machine IDs are random hex: some hold a run of digits shaped like a phone
        # number, and an engineer matching boots needs them whole
        " -2 67e3232591f040109235373e456a500d Tue 2026-11-24T05:41:37 UTC\n"
    )
    assert Scrubber()(text) == text
    assert Scrubber()(f"call {PHONE}, tel:02079460018.") == "call [removed], tel:[removed]."
