"""Messages that sent the engineer the wrong way: a wrong argument called a configuration
error, advice that did not apply, placeholders instead of an explanation."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from daemon.kioskctl.parts import RunResult
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args


def test_a_name_given_as_a_staff_id_is_a_usage_error_that_does_not_repeat_it(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = kiosk.config.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.StringIO("583920\n583920\n"))
    code, _out, err = kiosk.run("staff", "add", "Jane Smith", "--pin-stdin")
    assert code == 2, err
    assert "not a staff id" in err and "rec-0412" in err and "never a person's name" in err
    assert "Jane" not in err and "configuration" not in err
    code, _out, err = kiosk.run("staff", "remove", "Jane Smith")
    assert code == 2 and "Jane" not in err
    assert kiosk.config.read_bytes() == before


def _fresh(api: RefApi, tmp_path: Path) -> Kiosk:
    return Kiosk(tmp_path, tmp_path / "etc" / "kiosk.toml", api, None,  # type: ignore[arg-type]
                 FakeClock(wall=time.time()))  # fmt: skip


def _without(argv: list[str], option: str) -> list[str]:
    i = argv.index(option)
    return [*argv[:i], *argv[i + 2 :]]


def test_provision_with_an_http_url_says_https_is_required_and_why(
    api: RefApi, tmp_path: Path
) -> None:
    k = _fresh(api, tmp_path)
    argv = provision_args(api, tmp_path, "kiosk-http")
    argv[argv.index("--api-url") + 1] = "http://api.probation.example/"
    code, _out, err = k.run(*argv)
    assert code == 2, err
    assert "--api-url http://api.probation.example/" in err and "https://" in err
    assert "certificate" in err and "Nothing was changed" in err
    assert "configuration file" not in err
    assert not k.config.exists()


@pytest.mark.parametrize(
    ("option", "says"),
    [("--api-url", "--api-url https://"), ("--device-id", "--device-id kiosk-0042")],
)
def test_provision_without_a_required_option_names_the_option(
    api: RefApi, tmp_path: Path, option: str, says: str
) -> None:
    k = _fresh(api, tmp_path)
    code, _out, err = k.run(*_without(provision_args(api, tmp_path, "kiosk-noopt"), option))
    assert code == 2, err
    assert says in err and "missing required key" not in err
    assert not k.config.exists()


def systemd_not_pid1(argv: list[str], timeout_s: float) -> RunResult:
    """systemctl installed, systemd not running (a container): it exits 1, prints nothing."""
    return (1, "")


def test_units_without_systemd_as_pid1_say_so_instead_of_question_marks(kiosk: Kiosk) -> None:
    _code, out, _err = kiosk.run("doctor", "--no-hardware", "--json",
                                 parts=replace(kiosk.parts, run=systemd_not_pid1))  # fmt: skip
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    assert rows["systemd"]["status"] == "warn"
    assert "systemctl is not available here" in rows["systemd"]["detail"]
    assert "kiosk" not in rows and "?" not in out
    _code, out, _err = kiosk.run("status", parts=replace(kiosk.parts, run=systemd_not_pid1))
    assert "unknown (systemctl is not available here)" in out
    assert "not running" not in out


@contextlib.contextmanager
def stalled_api() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_one_shot_sync_against_a_stalled_api_does_not_promise_a_retry(kiosk: Kiosk) -> None:
    with stalled_api() as port:
        kiosk.edit("api", url=f"https://127.0.0.1:{port}/", timeout_s=0.5)
        code, _out, err = kiosk.run("sync")
    assert code == 1
    assert "did not answer in time" in err
    assert "will retry" not in err.lower()
    assert "nothing was lost" in err and "run `kioskctl sync` again" in err


def test_a_one_shot_sync_with_the_api_down_says_to_run_it_again(kiosk: Kiosk) -> None:
    # the commonest case on site (network or API down): "will be sent later" is kiosk-sync's
    # promise, not this command's
    with stalled_api() as port:
        pass  # closed again: nothing listens there now, the connection is refused
    kiosk.edit("api", url=f"https://127.0.0.1:{port}/", timeout_s=0.5)
    code, _out, err = kiosk.run("sync")
    assert code == 1
    assert "cannot reach the central API" in err
    assert "will be sent later" not in err
    assert "nothing was lost" in err and "run `kioskctl sync` again" in err


def test_config_is_taken_after_the_command_too(kiosk: Kiosk) -> None:
    out, err = io.StringIO(), io.StringIO()
    from daemon.kioskctl.__main__ import main

    code = main(["status", "--config", str(kiosk.config)], parts=kiosk.parts,
                clock=kiosk.clock, stdout=out, stderr=err)  # fmt: skip
    assert code in (0, 1) and out.getvalue().startswith("Kiosk "), err.getvalue()
    code = main(["outbox", "list", "--config", str(kiosk.config)], parts=kiosk.parts,
                clock=kiosk.clock, stdout=out, stderr=err)  # fmt: skip
    assert code == 0, err.getvalue()


def test_the_summary_line_counts_one_warning_in_the_singular() -> None:
    from daemon.kioskctl.report import failed, passed, to_table, warned

    rows = [passed("key", "present"), warned("clock", "not synchronised", "timedatectl status")]
    assert to_table(rows).splitlines()[-1] == "1 passed, 1 warning, 0 failed"
    rows.append(warned("roster", "no roster yet", "start kiosk-sync"))
    rows.append(failed("disk", "full", "free space"))
    assert to_table(rows).splitlines()[-1] == "1 passed, 2 warnings, 1 failed"
