"""``kioskctl staff``: each member of staff with their own PIN, so records name who acted."""

from __future__ import annotations

import io
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.errors import ConfigError
from daemon.kiosk import check_staff
from daemon.kioskctl.staffcmd import pin_problem
from daemon.kioskctl.tomlout import write_config
from tests.kioskctl.conftest import Kiosk


def staff(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return kiosk.run("staff", *argv)


def test_each_member_of_staff_gets_their_own_pin_and_records_can_name_them(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = staff(kiosk, monkeypatch, "add", "rec-0412", "--pin-stdin",
                         stdin="583920\n583920\n")  # fmt: skip
    assert code == 0 and "rec-0412 can open staff mode" in out and "systemctl restart" in out
    code, _, _ = staff(kiosk, monkeypatch, "add", "rec-0977", "--pin-stdin",
                       stdin="640271\n640271\n")  # fmt: skip
    assert code == 0
    text = kiosk.config.read_text()
    assert "[[staff.members]]" in text and "583920" not in text and "640271" not in text
    cfg = load_config(kiosk.config)
    assert [m.id for m in cfg.staff.members] == ["rec-0412", "rec-0977"]
    assert check_staff("583920", cfg.staff) == "rec-0412"
    assert check_staff("640271", cfg.staff) == "rec-0977"
    assert check_staff("583921", cfg.staff) is None
    code, out, _ = staff(kiosk, monkeypatch, "list")
    assert out.split("\n")[:2] == ["rec-0412", "rec-0977"]
    assert "583920" not in out and "pbkdf2" not in out
    code, out, _ = staff(kiosk, monkeypatch, "remove", "rec-0412")
    assert code == 0
    cfg = load_config(kiosk.config)
    assert [m.id for m in cfg.staff.members] == ["rec-0977"]
    assert check_staff("583920", cfg.staff) is None  # removed: the PIN opens nothing


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (["add", "rec-1", "--pin-stdin"], "1111\n1111\n", "one digit repeated"),
        (["add", "rec-1", "--pin-stdin"], "123456\n123456\n", "counting up or down"),
        (["add", "rec-1", "--pin-stdin"], "9876\n9876\n", "counting up or down"),
        (["add", "rec-1", "--pin-stdin"], "12\n12\n", "4 to 12 digits"),
        (["add", "rec-1", "--pin-stdin"], "48a913\n48a913\n", "4 to 12 digits"),
        (["add", "rec-1", "--pin-stdin"], "583920\n583921\n", "the two PINs differ"),
        (["add", "rec-0412", "--pin-stdin"], "640271\n640271\n", "is taken"),
        (["add", "rec-2", "--pin-stdin"], "583920\n583920\n", "another member of staff has"),
        (["remove", "rec-9999"], "", "no staff PIN with the id"),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str, says: str
) -> None:
    assert staff(kiosk, monkeypatch, "add", "rec-0412", "--pin-stdin",
                 stdin="583920\n583920\n")[0] == 0  # fmt: skip
    before = kiosk.config.read_bytes()
    code, _out, err = staff(kiosk, monkeypatch, *argv, stdin=stdin)
    assert code == 1 and says in err, err
    assert kiosk.config.read_bytes() == before


def test_the_demo_pin_shared_by_all_staff_is_listed_as_such_and_can_be_removed(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    kiosk.edit("staff", pin_hash="pbkdf2$20000$c2FsdA==$aGFzaA==")
    _code, out, _ = staff(kiosk, monkeypatch, "list")
    assert "records cannot tell who used it" in out
    assert staff(kiosk, monkeypatch, "remove", "staff")[0] == 0
    _code, out, _ = staff(kiosk, monkeypatch, "list")
    assert "staff mode cannot be opened" in out


def test_a_bad_staff_entry_in_the_configuration_is_named(tmp_path: Path, kiosk: Kiosk) -> None:
    base = kiosk.config.read_text()
    for extra, says in (
        ('[[staff.members]]\nid = "Jane Smith"\npin_hash = "x"\n', "staff.members[0]"),
        ('[[staff.members]]\nid = "rec-1"\npin_hash = "secret"\n', "kioskctl staff add"),
        ('[[staff.members]]\nid = "a"\npin_hash = "pbkdf2$20000$YQ==$YQ=="\n' * 2, "twice"),
    ):
        bad = tmp_path / "kiosk.toml"
        bad.write_text(base + "\n" + extra)
        with pytest.raises(ConfigError) as err:
            load_config(bad)
        assert says in str(err.value), str(err.value)


@pytest.mark.parametrize("pin", ["583920", "0429", "739104826531"])
def test_reasonable_pins_are_accepted(pin: str) -> None:
    assert pin_problem(pin) is None


COMMENTED = """\
# kiosk.toml for the Cardiff lobby kiosk: ask the field team before changing anything
[device]
id = "kiosk-cdf-1"   # as on the asset label
data_dir = "{data}"
allow_simulated = true

# the central API; the CA comes from enrolment
[api]
url = "https://api.probation.example/"

[staff]
# reception, early shift
warn_after_s = 120

[[staff.members]]
id = "eng-1"
pin_hash = "pbkdf2$20000$c2FsdA==$aGFzaA=="

[[staff.members]]
id = "eng-2"
pin_hash = "pbkdf2$20000$c2FsdDI=$aGFzaDI="

# simulated parts for the bench rig
[camera]
backend = "simulated"
"""


def _commented(tmp_path: Path) -> Path:
    cfg = tmp_path / "etc" / "kiosk.toml"
    cfg.parent.mkdir()
    cfg.write_text(COMMENTED.format(data=tmp_path / "data"))
    return cfg


def _staff_cli(cfg: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    from daemon.clock import FakeClock
    from daemon.kioskctl.__main__ import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(["--config", str(cfg), "staff", *argv], clock=FakeClock(), stdout=io.StringIO(),
                stderr=io.StringIO())  # fmt: skip


def test_staff_changes_keep_the_engineers_comments_and_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _commented(tmp_path)
    assert _staff_cli(cfg, monkeypatch, "remove", "eng-2") == 0
    text = cfg.read_text()
    for comment in ("# kiosk.toml for the Cardiff lobby kiosk", "# as on the asset label",
                    "# the central API; the CA comes from enrolment", "# reception, early shift",
                    "# simulated parts for the bench rig"):  # fmt: skip
        assert comment in text, text
    assert "eng-2" not in text and 'id = "eng-1"' in text
    assert (
        text.index("[device]")
        < text.index("[api]")
        < text.index("[staff]")
        < text.index("[camera]")
    )
    assert _staff_cli(cfg, monkeypatch, "add", "rec-0412", "--pin-stdin",
                      stdin="583920\n583920\n") == 0  # fmt: skip
    text = cfg.read_text()
    assert "# simulated parts for the bench rig" in text and "# reception, early shift" in text
    assert [m.id for m in load_config(cfg).staff.members] == ["eng-1", "rec-0412"]
    # nothing but the staff list changed
    before = tomllib.loads(COMMENTED.format(data=tmp_path / "data"))
    after = tomllib.loads(text)
    after["staff"].pop("members")
    before["staff"].pop("members")
    assert after == before


def test_staff_changes_keep_the_files_owner_group_and_mode_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _commented(tmp_path)
    os.chmod(cfg, 0o640)
    if os.geteuid() == 0:  # root: hand it to another owner and group, as root:kiosk on a device
        os.chown(cfg, 65534, 65534)
    before = cfg.stat()
    old_umask = os.umask(0o077)
    try:
        assert _staff_cli(cfg, monkeypatch, "remove", "eng-2") == 0
        assert _staff_cli(cfg, monkeypatch, "add", "rec-0412", "--pin-stdin",
                          stdin="583920\n583920\n") == 0  # fmt: skip
    finally:
        os.umask(old_umask)
    after = cfg.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert [p.name for p in cfg.parent.iterdir()] == ["kiosk.toml"]  # no temp file left


def test_a_new_configuration_is_readable_by_the_kiosk_user_whatever_the_umask(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "new" / "kiosk.toml"
    old_umask = os.umask(0o077)
    try:
        write_config(cfg, {"device": {"id": "k"}, "api": {"url": "https://a/"}})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o644
