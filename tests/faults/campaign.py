"""Fault campaigns: kill the kiosk at random moments, optionally cut the power (lose what was
not fsynced), restart, and check that every check-in confirmed to a person survives exactly
once with the chain intact. Used by the tests (short runs) and ``make soak`` (long runs)."""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from daemon.clock import SystemClock
from daemon.keys import FileKeyBackend
from daemon.outbox import Outbox
from daemon.records import verify_chain

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def build_lostwrites(out_dir: Path) -> Path:
    """Compile the power-loss shim (tests/faults/lostwrites.c) with the system's gcc."""
    so = out_dir / "lostwrites.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(so), str(HERE / "lostwrites.c"), "-ldl"],
        check=True,
    )
    return so


@dataclass
class Campaign:
    work: Path
    seed: int = 1
    power_loss: bool = False
    api: str | None = None  # JSON ApiConfig for the child's sync, or None for local only
    confirmed: dict[int, str] = field(default_factory=dict)
    episodes: int = 0
    shim: Path | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.data = self.work / "data"
        self.shadow = self.work / "shadow"
        self.data.mkdir(parents=True, exist_ok=True)
        self.keyfile = self.work / "key.pem"
        if not self.keyfile.exists():
            FileKeyBackend(self.keyfile).create()
        if self.power_loss:
            self.shim = build_lostwrites(self.work)
            self._reset_shadow()

    def _reset_shadow(self) -> None:
        shutil.rmtree(self.shadow, ignore_errors=True)
        shutil.copytree(self.data, self.shadow)
        (self.shadow / ".inodes").mkdir(exist_ok=True)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if self.shim is not None:
            env.update(
                LD_PRELOAD=str(self.shim),
                LOSTWRITES_DIR=str(self.data.resolve()),
                LOSTWRITES_SHADOW=str(self.shadow.resolve()),
            )
        return env

    def _spawn(self, count: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "tests.faults.child", str(self.data), str(self.keyfile)]
        args.append(str(count))
        if self.api:
            args.append(self.api)
        return subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._env(),
            cwd=ROOT,
        )

    def episode(self, count: int = 60, max_delay_s: float = 0.6) -> None:
        """Start the child, kill it with SIGKILL after a random delay, cut the power if asked."""
        child = self._spawn(count)
        deadline = time.monotonic() + self.rng.uniform(0.15, max_delay_s)
        assert child.stdout is not None
        fd = child.stdout.fileno()
        buf = b""
        while (left := deadline - time.monotonic()) > 0:
            ready, _w, _x = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
        child.send_signal(signal.SIGKILL)
        child.wait()
        while chunk := os.read(fd, 65536):
            buf += chunk
        child.stdout.close()
        for line in buf.decode().splitlines():
            if line.startswith("C "):
                _c, seq, rid = line.split()
                self.confirmed[int(seq)] = rid
        if self.power_loss:
            # the plug is pulled: only what reached the disk (the shadow) is there at boot
            shutil.rmtree(self.data)
            shutil.copytree(self.shadow, self.data, ignore=shutil.ignore_patterns(".inodes"))
            self._reset_shadow()
        self.episodes += 1

    def finish(self, timeout_s: float = 120.0) -> str:
        """A last, uninterrupted run (with sync when there is an API) to let everything
        settle; returns what the child printed."""
        child = self._spawn(0)
        try:
            out, _ = child.communicate(timeout=timeout_s)
        finally:  # a campaign that fails must not leave its child behind
            if child.poll() is None:
                child.kill()
                child.wait()
        return out.decode()

    def local_records(self) -> list[tuple[int, str, str]]:
        key = FileKeyBackend(self.keyfile).load()
        with Outbox(self.data, device="kiosk-fault", key=key, clock=SystemClock()) as ob:
            rows = list(ob.all_compact())
            assert ob.sweep_orphans() == 0, "orphaned blob files after recovery"
            verify_chain([c for _s, _st, c in rows], key.public_key(), "kiosk-fault")
        return rows
