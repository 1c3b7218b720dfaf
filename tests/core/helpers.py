"""Small builders shared by the core tests (synthetic data only)."""

from __future__ import annotations

from pathlib import Path

from daemon.clock import FakeClock
from daemon.keys import Alg, SoftwareKey, generate
from daemon.outbox import Outbox


def make_key(alg: Alg = "ES256") -> SoftwareKey:
    return SoftwareKey(generate(alg))


def open_outbox(
    tmp: Path, key: SoftwareKey | None = None, *, device: str = "kiosk-t1", **kw: object
) -> Outbox:
    return Outbox(
        tmp,
        device=device,
        key=key or make_key(),
        clock=kw.pop("clock", FakeClock()),
        **kw,  # type: ignore[arg-type]
    ).open()


def synthetic_checkin(n: int) -> dict[str, object]:
    return {
        "person": f"CR-{n:06d}",
        "verify": {"method": "fingerprint", "score": 120, "threshold": 60, "attempts": 1},
        "answers": {"address_changed": False},
    }
