"""SIGKILL and power loss at random moments while check-ins are being made: every check-in
confirmed to a person survives, once, and the chain verifies."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.records import decode_unverified
from tests.faults.campaign import Campaign
from tests.faults.test_api_faults import report


def _check(c: Campaign) -> tuple[int, int, int]:
    rows = c.local_records()
    held = {
        decode_unverified(comp)[1]["seq"]: decode_unverified(comp)[1]["id"]
        for _s, _st, comp in rows
    }
    lost = sum(1 for seq, rid in c.confirmed.items() if held.get(seq) != rid)
    ids = list(held.values())
    duplicated = len(ids) - len(set(ids))
    return len(c.confirmed), lost, duplicated


def test_sigkill_campaign_loses_nothing(tmp_path: Path) -> None:
    c = Campaign(tmp_path, seed=7)
    for _ in range(int(os.environ.get("KIOSK_KILL_EPISODES", "40"))):
        c.episode()
    c.finish()
    confirmed, lost, dup = _check(c)
    report("kill (local)", c.episodes, confirmed, lost, dup)
    assert confirmed > c.episodes  # the campaign really made check-ins
    assert (lost, dup) == (0, 0)


def test_power_loss_campaign_loses_nothing(tmp_path: Path) -> None:
    c = Campaign(tmp_path, seed=11, power_loss=True)
    for _ in range(int(os.environ.get("KIOSK_POWER_EPISODES", "30"))):
        c.episode()
    c.finish()
    confirmed, lost, dup = _check(c)
    report("power loss", c.episodes, confirmed, lost, dup)
    assert confirmed > c.episodes
    assert (lost, dup) == (0, 0)


def test_the_power_loss_model_really_loses_unsynced_writes(tmp_path: Path) -> None:
    """The shim must not be a no-op: a file written without fsync is gone after the cut."""
    import subprocess
    import sys

    c = Campaign(tmp_path, seed=3, power_loss=True)
    script = (
        "import os;"
        f"d={str(c.data)!r};"
        "open(d+'/unsynced','w').write('lost');"
        "f=open(d+'/synced','w'); f.write('kept'); f.flush(); os.fsync(f.fileno());"
        "fd=os.open(d, os.O_RDONLY); os.fsync(fd)"
    )
    subprocess.run([sys.executable, "-c", script], env=c._env(), check=True)
    assert (c.shadow / "synced").read_text() == "kept"
    assert (c.shadow / "unsynced").read_text() == ""  # name durable, content never synced
    script2 = f"open({str(c.data)!r}+'/never','w').write('x')"
    subprocess.run([sys.executable, "-c", script2], env=c._env(), check=True)
    assert not (c.shadow / "never").exists()
