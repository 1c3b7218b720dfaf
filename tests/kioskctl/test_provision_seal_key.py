"""``kioskctl provision`` refuses a central API's photo-sealing key that the kiosk could not
use, instead of writing it and saying "provisioned" (the kiosk would then exit 78 asking to
provision again, which only fetched the same key)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import FakeClock
from daemon.kioskctl import provision as provision_mod
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args


@pytest.mark.parametrize("handed_out", ["notbase64", "", "AAAA"])
def test_provision_refuses_a_sealing_key_the_kiosk_could_not_use(
    api: RefApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handed_out: str
) -> None:
    real = provision_mod._enrol

    def another_api(*args: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
        status, answer = real(*args, **kw)  # really enrolled; the answer's key is the fault
        return status, answer | {"seal_public_key": handed_out}

    monkeypatch.setattr(provision_mod, "_enrol", another_api)
    k = Kiosk(tmp_path, tmp_path / "etc" / "kiosk.toml", api, None,  # type: ignore[arg-type]
              FakeClock(wall=time.time()))  # fmt: skip
    device = f"kiosk-seal-{len(handed_out)}"
    code, out, err = k.run(*provision_args(api, tmp_path, device))
    assert code == 1
    assert "provisioned" not in out
    assert "photo-sealing key" in err and "Nothing was written" in err and "[seal_key]" in err
    assert f"retire {device}" in err
    assert not (tmp_path / "etc" / "kiosk.toml").exists()
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
