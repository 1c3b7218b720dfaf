"""The API's TLS files named by the configuration (``api.ca_bundle``, ``api.client_cert``,
``api.client_key``) and by ``provision --ca``: a missing or wrong one is named with what to do,
never a traceback, a network diagnosis or "report this kioskctl bug"."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from hil import pki as pkimod
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args


def test_sync_with_a_missing_ca_bundle_exits_78_naming_it(kiosk: Kiosk) -> None:
    kiosk.edit("api", ca_bundle="/tmp/nope.pem")
    code, out, err = kiosk.run("sync")
    assert code == 78, err
    assert "api.ca_bundle: /tmp/nope.pem does not exist" in err
    assert "Traceback" not in out + err and "FileNotFoundError" not in err


def test_doctor_names_a_missing_ca_bundle_not_the_network(kiosk: Kiosk) -> None:
    kiosk.edit("api", ca_bundle="/tmp/nope.pem")
    code, out, _err = kiosk.run("doctor", "--no-hardware")
    assert code == 1
    assert "api.ca_bundle: /tmp/nope.pem does not exist" in out
    assert "network cable" not in out and "FileNotFoundError" not in out
    # the rest of the kiosk is still checked
    assert "PASS  outbox integrity" in out


@pytest.mark.parametrize("missing", ["client_cert", "client_key"])
def test_doctor_names_a_missing_client_certificate_or_key(
    kiosk: Kiosk, tmp_path: Path, missing: str
) -> None:
    cert, key = pkimod.issue_client_cert(kiosk.api.pki, "kiosk-x", tmp_path / "client")
    files = {"client_cert": str(cert), "client_key": str(key)}
    files[missing] = str(tmp_path / "gone.pem")
    kiosk.edit("api", **files)
    code, out, _err = kiosk.run("doctor", "--no-hardware", "--json")
    assert code == 1
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    assert rows["api tls"]["detail"].startswith(f"api.{missing}: {tmp_path}/gone.pem does not")
    assert "kiosk check-config" in rows["api tls"]["fix"]
    assert "crashed" not in out and "kioskctl bug" not in out
    code, _out, err = kiosk.run("sync")
    assert code == 78 and f"api.{missing}" in err


def test_other_commands_still_work_while_the_ca_bundle_is_being_fixed(kiosk: Kiosk) -> None:
    kiosk.edit("api", ca_bundle="/tmp/nope.pem")
    assert kiosk.run("outbox", "list")[0] == 0
    assert kiosk.run("staff", "list")[0] == 0


def _fresh(api: RefApi, tmp_path: Path) -> Kiosk:
    return Kiosk(tmp_path, tmp_path / "etc" / "kiosk.toml", api, None,  # type: ignore[arg-type]
                 FakeClock(wall=time.time()))  # fmt: skip


def _with_ca(argv: list[str], ca: str) -> list[str]:
    i = argv.index("--ca")
    return [*argv[: i + 1], ca, *argv[i + 2 :]]


@pytest.mark.parametrize(
    ("ca", "says"),
    [
        ("/tmp/nope.pem", "--ca: /tmp/nope.pem does not exist"),
        ("garbage", "is not a PEM certificate bundle"),
    ],
)
def test_provision_refuses_a_bad_ca_and_changes_nothing(
    api: RefApi, tmp_path: Path, ca: str, says: str
) -> None:
    if ca == "garbage":
        ca = str(tmp_path / "garbage.pem")
        Path(ca).write_text("not a certificate\n")
    k = _fresh(api, tmp_path)
    code, _out, err = k.run(*_with_ca(provision_args(api, tmp_path, "kiosk-badca"), ca))
    assert code == 2, err
    assert says in err and "the central team gave you" in err and "Nothing was changed" in err
    assert "Traceback" not in err and "SSLError" not in err
    assert not k.config.exists() and not (tmp_path / "data" / "device-key.pem").exists()


def test_provision_under_umask_077_leaves_files_the_kiosk_user_can_read(
    api: RefApi, tmp_path: Path
) -> None:
    k = _fresh(api, tmp_path)
    old = os.umask(0o077)
    try:
        code, _out, err = k.run(*provision_args(api, tmp_path, "kiosk-umask"))
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "etc" / "api-ca.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE(k.config.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "data" / "device-key.pem").stat().st_mode) == 0o600
