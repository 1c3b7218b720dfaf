"""A real reference API on loopback (HTTPS), and a kiosk provisioned against it by
``kioskctl provision`` whose sensor is the protocol emulator on a pty (the real serial
backend talks to it), with the simulated camera, GPIO and display."""

from __future__ import annotations

import io
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import FakeClock
from daemon.config import Config, load_config
from daemon.keys import FileKeyBackend
from daemon.kioskctl.__main__ import main
from daemon.kioskctl.parts import Parts, RunResult
from daemon.kioskctl.tomlout import write_config
from daemon.outbox import Outbox
from hil.fingerprint import SensorEmulator
from hil.refapi.server import RefApi
from tests.prompts import silent_prompts

FP = {
    "backend": "serial",
    "baud": 57600,
    "initial_baud": 57600,
    "reply_timeout_s": 0.3,
    "finger_timeout_s": 1.0,
    "poll_interval_s": 0.005,
    "recover_timeout_s": 0.5,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefApi]:
    ref = RefApi(tmp_path_factory.mktemp("refapi"))
    ref.start()
    yield ref
    ref.stop()


def no_systemd(argv: list[str], timeout_s: float) -> RunResult:
    """This machine has no systemd: what run_command answers when systemctl is missing."""
    return None


@dataclass
class Kiosk:
    folder: Path
    config: Path
    api: RefApi
    emulator: SensorEmulator
    clock: FakeClock
    parts: Parts = field(default_factory=lambda: Parts(run=no_systemd))

    @property
    def cfg(self) -> Config:
        return load_config(self.config)

    def run(self, *argv: str, parts: Parts | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--config", str(self.config), *argv],
            parts=parts or self.parts,
            clock=self.clock,
            stdout=out,
            stderr=err,
        )
        return code, out.getvalue(), err.getvalue()

    def edit(self, section: str, **values: Any) -> None:
        table = tomllib.loads(self.config.read_text())
        table.setdefault(section, {}).update(values)
        write_config(self.config, table)

    def outbox(self) -> Outbox:
        cfg = self.cfg
        key = FileKeyBackend(cfg.device.key_path).load()
        return Outbox(cfg.device.data_dir, device=cfg.device.id, key=key, clock=self.clock).open()


_n = 0


def provision_args(api: RefApi, folder: Path, device: str, code: str = "") -> list[str]:
    """``--code=`` form: a code may begin with '-'."""
    return ["provision", "--device-id", device, "--api-url", api.url, "--ca", str(api.ca),
            f"--code={code or api.mint_code()}", "--data-dir", str(folder / "data"),
            "--allow-simulated"]  # fmt: skip


@pytest.fixture
def kiosk(api: RefApi, tmp_path: Path) -> Iterator[Kiosk]:
    global _n
    _n += 1
    with SensorEmulator("R503", time_scale=0, seed=3) as emu:
        port = emu.start_pty(tmp_path / "ttyFP")
        parts = Parts(run=no_systemd, prompts_dir=silent_prompts(tmp_path / "prompts"),
                      sound_cards=lambda: ["Device"])  # fmt: skip
        k = Kiosk(tmp_path, tmp_path / "etc" / "kiosk.toml", api, emu,
                  FakeClock(wall=time.time(), synced=True), parts)  # fmt: skip
        code, _out, err = k.run(*provision_args(api, tmp_path, f"kiosk-ctl{_n:03d}"))
        assert code == 0, err
        k.edit("fingerprint", port=port, **FP)
        k.edit("camera", backend="simulated", width=320, height=240, gate_width=160)
        k.edit("gpio", backend="mock")
        k.edit("display", backend="simulated")
        yield k
