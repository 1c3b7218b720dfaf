"""The command line: export for audit, the reviewer's open-photo, mint-code, openapi."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from daemon.records import verify_chain
from daemon.sealing import TEMPLATE_INFO, public_from_private, seal
from hil import pki as pkimod
from hil.refapi.__main__ import main
from hil.refapi.app import openapi_document
from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.conftest import open_photo_args, stored_photo

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_is_the_servers_own() -> None:
    committed = json.loads(DOC.read_text())
    assert committed["openapi"].startswith("3.1")
    assert committed == json.loads(json.dumps(openapi_document())), (
        "docs/openapi.json is stale: run `.venv/bin/python -m hil.refapi openapi > "
        "docs/openapi.json`"
    )
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["openapi"]) == 0
    assert json.loads(out.getvalue()) == committed


async def test_exported_records_verify_per_device_with_only_the_public_key(
    api: InProcess, tmp_path: Path
) -> None:
    a, b = SimDevice(clock=api.settings.clock), SimDevice(clock=api.settings.clock)
    await api.enrol(a)
    await api.enrol(b)
    chain_a, chain_b = a.records(30), b.records(5)
    # sent out of order: the export is still in seq order
    await api.push(a, chain_a[10:])
    await api.push(b, chain_b)
    await api.push(a, chain_a[:10])
    out = tmp_path / "export.jws"
    assert (
        main(
            ["export", *api.where(), "--operator", "audit-01", "--purpose", "audit", "-o", str(out)]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 35
    got_a = [x for x in lines if x in set(chain_a)]
    got_b = [x for x in lines if x in set(chain_b)]
    verify_chain(got_a, a.key.public_key(), a.device, head_seq=30)
    verify_chain(got_b, b.key.public_key(), b.device, head_seq=5)
    one = tmp_path / "one.jws"
    assert (
        main(
            [
                "export",
                *api.where(),
                "--operator",
                "audit-01",
                "--purpose",
                "audit",
                "--device",
                b.device,
                "-o",
                str(one),
            ]
        )
        == 0
    )
    assert one.read_text().splitlines() == chain_b


async def test_a_reviewer_opens_a_stored_photo_with_the_api_key_only(
    api: InProcess, dev: SimDevice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = pkimod.create(tmp_path / "pki")
    jpeg = b"\xff\xd8\xff synthetic jpeg \xff\xd9"
    sha = await stored_photo(api, dev, pki, jpeg)
    out = tmp_path / "photo.jpg"
    base = open_photo_args(api, sha)
    # no key, no photo
    assert main([*base, "--seal-key", str(tmp_path / "missing.key"), "-o", str(out)]) == 2
    assert not out.exists()
    # another key cannot open it
    other = pkimod.create(tmp_path / "other")
    assert main([*base, "--seal-key", str(other.seal_key), "-o", str(out)]) == 1
    assert not out.exists()
    with caplog.at_level(logging.INFO):
        assert main([*base, "--seal-key", str(pki.seal_key), "-o", str(out)]) == 0
    assert out.read_bytes() == jpeg
    assert out.stat().st_mode & 0o777 == 0o600
    audit = [m for m in caplog.messages if "opened sealed photo" in m]
    assert audit == [f"operator staff-042 opened sealed photo {sha[:12]}"]
    # a blob sealed for the roster is not a photo and is refused
    template = seal(b"template", public_from_private(pki.seal_key.read_bytes()), TEMPLATE_INFO)
    tsha = hashlib.sha256(template).hexdigest()
    api.storage.put_blob(tsha, dev.device, template, 0.0)
    base[4] = tsha
    assert main([*base, "--seal-key", str(pki.seal_key), "-o", str(tmp_path / "t")]) == 1


def test_mint_code_prints_a_code_that_enrols_once(tmp_path: Path) -> None:
    assert main(["init", "--data", str(tmp_path)]) == 0
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["mint-code", "--data", str(tmp_path), "--ttl", "60"]) == 0
    code = out.getvalue().strip()
    assert len(code) >= 16
    from hil.refapi.storage import EnrolmentRefused, SqliteStorage

    store = SqliteStorage(tmp_path / "refapi.sqlite3")
    try:
        d = SimDevice()
        assert store.enrol(code, d.device, d.alg, d.public_pem, now=0.0) == "created"
        with pytest.raises(EnrolmentRefused):
            store.enrol(code, "kiosk-else", d.alg, SimDevice().public_pem, now=0.0)
    finally:
        store.close()
