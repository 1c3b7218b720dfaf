"""``kioskctl outbox export``: the lines are the records (case references, answers), so a file
is private (0600) whatever the umask; a wrong ``--out`` or ``--from`` is said plainly."""

from __future__ import annotations

import os
import stat

from tests.kioskctl.conftest import Kiosk
from tests.kioskctl.test_records_cmds import PERSON, add_checkins

WHO = ("--operator", "fe-0417", "--purpose", "audit")  # who exports, and why


def test_an_export_file_is_private_whatever_the_umask(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 2)
    target = kiosk.folder / "audit.jws"
    old = os.umask(0o022)
    try:
        code, out, err = kiosk.run("outbox", "export", *WHO, "--out", str(target))
    finally:
        os.umask(old)
    assert code == 0, err
    assert "4 records written" in out and "0600" in out  # with its own record
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert PERSON not in out + err  # the terminal shows counts, the file the records
    assert len(target.read_text().splitlines()) == 4
    target.chmod(0o644)  # an earlier export left readable: replaced by a private one
    assert kiosk.run("outbox", "export", *WHO, "--out", str(target))[0] == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_export_into_a_missing_directory_is_a_usage_error(kiosk: Kiosk) -> None:
    target = kiosk.folder / "no" / "such" / "audit.jws"
    code, _out, err = kiosk.run("outbox", "export", *WHO, "--out", str(target))
    assert code == 2, err
    assert f"the directory {target.parent} does not exist" in err
    assert "Traceback" not in err and "FileNotFoundError" not in err
    assert not target.parent.exists()


def test_export_from_beyond_the_head_says_so(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 2)  # seq 1 is the enrolment: the head is 3
    target = kiosk.folder / "audit.jws"
    code, _out, err = kiosk.run("outbox", "export", *WHO, "--from", "999", "--out", str(target))
    assert code == 1
    assert "no records from seq 999 (the head is 3)" in err
    assert not target.exists()
    code, out, err = kiosk.run("outbox", "export", *WHO, "--from", "999")
    assert code == 1 and out == "" and "the head is 3" in err
