"""The command line meets operator mistakes: each gets a message that says what is wrong and
what to do, an exit status, no traceback, nothing created or lost, and (for personal data) a
line of the access log. Synthetic data only."""

from __future__ import annotations

import io
import json
import stat
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from hil import pki as pkimod
from hil.refapi.__main__ import main
from hil.refapi.pgserver import TempPostgres
from hil.refapi.storage import SqliteStorage
from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.conftest import open_photo_args, stored_photo


def _access(api: InProcess) -> list[dict[str, object]]:
    return api.storage.access_log(0, 1000)


# --- serve: its arguments are checked before anything is opened -------------------------------
@pytest.fixture
def pki(tmp_path: Path) -> pkimod.Pki:
    return pkimod.create(tmp_path / "pki")


def _serve(pki: pkimod.Pki, data: Path, **over: str | None) -> list[str]:
    args = {
        "--data": str(data),
        "--tls-cert": str(pki.server_cert),
        "--tls-key": str(pki.server_key),
        "--ca": str(pki.ca_cert),
        "--seal-public": pki.seal_public_b64(),
    } | over
    return ["serve", *[x for k, v in args.items() if v is not None for x in (k, v)]]


def test_serve_refuses_a_sealing_key_kiosks_could_not_use(
    tmp_path: Path, pki: pkimod.Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--data", str(tmp_path / "api")]) == 0
    for bad in ("notbase64", "AAAA", pki.seal_public_b64()[:-4]):
        assert main(_serve(pki, tmp_path / "api", **{"--seal-public": bad})) == 2
        err = capsys.readouterr().err
        assert "--seal-public" in err and "32 bytes of X25519 public key" in err, err
    assert main(_serve(pki, tmp_path / "api", **{"--seal-public": None})) == 2
    assert "--seal-public is required" in capsys.readouterr().err


def test_serve_names_each_missing_or_wrong_file_without_a_traceback(
    tmp_path: Path, pki: pkimod.Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--data", str(tmp_path / "api")]) == 0
    missing = str(tmp_path / "nope.pem")
    assert main(_serve(pki, tmp_path / "api", **{"--tls-cert": missing})) == 2
    err = capsys.readouterr().err
    assert f"--tls-cert {missing}: no such file" in err and "Traceback" not in err
    token = str(tmp_path / "admin.token")
    assert main([*_serve(pki, tmp_path / "api"), "--admin-token-file", token]) == 2
    assert f"--admin-token-file {token}: no such file" in capsys.readouterr().err
    Path(token).write_text("\n")
    assert main([*_serve(pki, tmp_path / "api"), "--admin-token-file", token]) == 2
    assert "is empty" in capsys.readouterr().err
    swapped = {"--tls-cert": str(pki.server_key), "--tls-key": str(pki.server_cert)}
    assert main(_serve(pki, tmp_path / "api", **swapped)) == 2
    assert "the wrong way round" in capsys.readouterr().err
    other = pkimod.create(tmp_path / "other")
    assert main(_serve(pki, tmp_path / "api", **{"--tls-key": str(other.server_key)})) == 2
    assert "its own private key" in capsys.readouterr().err
    # every problem at once, so one run shows all there is to fix
    assert main(_serve(pki, tmp_path / "api", **{"--tls-key": missing, "--seal-public": "x"})) == 2
    err = capsys.readouterr().err
    assert "--tls-key" in err and "--seal-public" in err


def test_serve_does_not_make_a_database_in_a_mistyped_folder(
    tmp_path: Path, pki: pkimod.Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_serve(pki, tmp_path / "dta")) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "dta") in err and "kiosk-refapi init" in err
    assert not (tmp_path / "dta").exists()


# --- a database must be there: only `init` makes one -----------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["export", "--operator", "op1", "--purpose", "audit"],
        ["mint-code"],
        ["access-log", "--operator", "op1", "--purpose", "audit"],
        ["prune", "--operator", "op1", "--dry-run"],
        [
            "open-photo",
            "--operator",
            "op1",
            "--purpose",
            "audit",
            "--seal-key",
            "k",
            "--sha",
            "ab",
            "-o",
            "p.jpg",
        ],
        ["apply-enrolment", "--operator", "op1", "--seal-key", "k", "--device", "d", "--seq", "1"],
        ["retire", "--operator", "op1", "--device", "kiosk-1", "--reason", "lost key"],
        ["import", "--operator", "op1", "--device", "kiosk-1", "card.jws"],
    ],
)
@pytest.mark.parametrize("folder", ["dta", "nowhere/at/all"])
def test_a_command_refuses_a_folder_with_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], folder: str
) -> None:
    (tmp_path / "dta").mkdir()
    (tmp_path / "card.jws").write_text("x.y.z\n")
    command = [str(tmp_path / c) if c == "card.jws" else c for c in command]
    where = tmp_path / folder
    assert main([command[0], "--data", str(where), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert str(where) in err and "kiosk-refapi init" in err, err
    assert "Traceback" not in err and "exported" not in err
    assert not (where / "refapi.sqlite3").exists()
    assert not (tmp_path / "nowhere").exists()


def test_init_makes_a_private_database_once_and_then_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "api"
    assert main(["init", "--data", str(where)]) == 0
    assert "made a new" in capsys.readouterr().err
    db = where / "refapi.sqlite3"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["mint-code", "--data", str(where)]) == 0
    assert main(["init", "--data", str(where)]) == 0
    assert "there already" in capsys.readouterr().err
    assert db.stat().st_size > 0
    # a file that is not a database is refused, never overwritten
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "refapi.sqlite3").write_text("not a database\n")
    assert main(["init", "--data", str(tmp_path / "junk")]) == 2
    assert "not a SQLite database" in capsys.readouterr().err
    assert (tmp_path / "junk" / "refapi.sqlite3").read_text() == "not a database\n"


def test_a_postgresql_database_without_the_schema_is_refused_until_init(
    postgres: TempPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = postgres.create_database("refapi_empty_cli")
    try:
        assert main(["export", "--database", dsn, "--operator", "op1", "--purpose", "audit"]) == 2
        err = capsys.readouterr().err
        assert "holds no reference API schema" in err and "kiosk-refapi init" in err
        assert main(["init", "--database", dsn]) == 0
        assert main(["export", "--database", dsn, "--operator", "op1", "--purpose", "audit"]) == 0
        assert "exported 0 records" in capsys.readouterr().err
    finally:
        postgres.drop_database("refapi_empty_cli")
    bad = dsn.replace("dbname=refapi_empty_cli", "dbname=refapi_not_there")
    assert main(["export", "--database", bad, "--operator", "op1", "--purpose", "audit"]) == 1
    assert "cannot connect to PostgreSQL" in capsys.readouterr().err


# --- export, open-photo, apply-enrolment, mint-code -------------------------------------------
async def test_export_to_a_file_is_private_and_a_missing_folder_is_named(
    api: InProcess, dev: SimDevice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.push(dev, dev.records(3))
    base = ["export", *api.where(), "--operator", "audit-01", "--purpose", "audit"]
    before = len(_access(api))
    assert main([*base, "-o", str(tmp_path / "missing" / "x.jws")]) == 2
    assert f"the folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
    assert len(_access(api)) == before  # nothing left the store
    out = tmp_path / "x.jws"
    assert main([*base, "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(out.read_text().splitlines()) == 3
    assert main([*base, "--device", "kiosk-typo", "-o", str(tmp_path / "y.jws")]) == 1
    err = capsys.readouterr().err
    assert "no device kiosk-typo" in err and dev.device in err
    assert not (tmp_path / "y.jws").exists()
    assert _access(api)[-1]["outcome"] == "not_found"


async def test_open_photo_with_the_tls_key_is_refused_and_logged(
    api: InProcess, dev: SimDevice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = pkimod.create(tmp_path / "pki")
    sha = await stored_photo(api, dev, pki, b"\xff\xd8 synthetic \xff\xd9")
    out = tmp_path / "photo.jpg"
    base = [*open_photo_args(api, sha), "-o", str(out)]
    assert main([*base, "--seal-key", str(pki.server_key)]) == 2
    err = capsys.readouterr().err
    assert "is not the API's sealing key (it is a PEM file: a TLS key?)" in err
    assert "Traceback" not in err and not out.exists()
    line = _access(api)[-1]
    assert (line["action"], line["outcome"], line["operator"]) == ("photo.open", "bad_key",
                                                                   "staff-042")  # fmt: skip
    assert main([*base, "--seal-key", str(tmp_path / "missing.key")]) == 2
    assert _access(api)[-1]["outcome"] == "no_key"
    away = ["-o", str(tmp_path / "no" / "photo.jpg")]
    assert main([*base[:-2], *away, "--seal-key", str(pki.seal_key)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, "--seal-key", str(pki.seal_key)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


async def test_apply_enrolment_with_the_tls_key_is_refused_and_logged(
    api: InProcess, dev: SimDevice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = pkimod.create(tmp_path / "pki")
    args = ["apply-enrolment", *api.where(), "--operator", "staff-042", "--device", dev.device,
            "--seq", "1", "--seal-key", str(pki.server_key)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not the API's sealing key" in err and "Traceback" not in err
    line = _access(api)[-1]
    assert (line["action"], line["outcome"]) == ("enrolment.apply", "bad_key")


@pytest.mark.parametrize("ttl", ["-10", "0", "nan", "abc", "9999999999"])
def test_mint_code_refuses_a_code_that_would_be_expired_or_everlasting(
    tmp_path: Path, ttl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--data", str(tmp_path)]) == 0
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["mint-code", "--data", str(tmp_path), "--ttl", ttl])
    assert exit_.value.code == 2
    assert out.getvalue() == ""
    assert "more than 0" in capsys.readouterr().err
    store = SqliteStorage(tmp_path / "refapi.sqlite3")
    try:
        assert store.db.execute("SELECT count(*) FROM codes").fetchone()[0] == 0
    finally:
        store.close()


async def test_the_admin_api_refuses_an_expired_enrolment_code_too(api: InProcess) -> None:
    admin = {"Authorization": "Bearer test-admin-token"}
    for ttl in ("-10", "0"):
        r = await api.client.post(f"/v1/admin/enrolment-codes?ttl_s={ttl}", headers=admin)
        assert r.status_code == 422, r.text
    r = await api.client.post("/v1/admin/enrolment-codes?ttl_s=60", headers=admin)
    assert r.status_code == 200 and json.loads(r.text)["expires"] > api.settings.clock()
