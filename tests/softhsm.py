"""SoftHSM2 tokens for tests: a real PKCS#11 library standing in for a kiosk's ATECC608B or
TPM. The library reads its configuration once per process, so the session shares one store
and each test initialises its own token in it (the backend looks again for new tokens)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from daemon.tokenkey import TokenKeyBackend

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "246813"  # a synthetic test PIN
needs_softhsm = pytest.mark.skipif(
    not MODULE.exists() or shutil.which("softhsm2-util") is None,
    reason="SoftHSM2 missing: run hil/test_deps.sh as root (make test does)",
)


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


def new_token(conf: Path, folder: Path) -> TokenKeyBackend:
    """An initialised, empty token and a 0600 PIN file for it, as a backend for key 'device'."""
    label = f"t-{uuid.uuid4().hex[:12]}"
    pins = ["--so-pin", "13579246", "--pin", PIN]
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, *pins],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    pin_file = folder / "token-pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return TokenKeyBackend(MODULE, label, "device", pin_file)
