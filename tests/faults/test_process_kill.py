"""The real daemon process killed (SIGKILL: a crash, a power cut) at a random moment of a
check-in, again and again, and started again: what the person was told is what was kept.

- A check-in whose "done" screen was shown is in the outbox, once.
- A check-in cut short after the person was identified is a ``fault`` record (the visit
  counts; docs/checkin-flow.md, "Restart in the middle"), or, when the kill came after its
  own record was saved, that record: never both, never two.
- Before identification nothing is recorded. The chain verifies across every restart.

Short here; ``make soak`` runs many more episodes.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from daemon.demo_support import PEOPLE
from daemon.keys import FileKeyBackend
from daemon.records import verify_chain
from hil.bench.kiosk_process import KioskProcess

VISIT_TYPES = ("checkin", "fault")


def _campaign(folder: Path, episodes: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"done": 0, "fault": 0, "saved_unseen": 0, "nothing": 0}
    with KioskProcess(folder, list(PEOPLE)) as kiosk:
        for episode in range(episodes):
            person = rng.choice(PEOPLE)
            before = len(kiosk.compacts())
            seen_from = len(kiosk.screens)
            failed: list[BaseException] = []

            def visit(who=person, failed=failed) -> None:  # type: ignore[no-untyped-def]
                try:
                    kiosk.check_in(who)
                except Exception as exc:  # the daemon died under it
                    failed.append(exc)

            driver = threading.Thread(target=visit, daemon=True)
            driver.start()
            # a whole check-in takes ~40 ms here: half the kills land inside one, half
            # mostly after it (the screen said "done", or was about to)
            time.sleep(rng.uniform(0.0, 0.06) if episode % 2 else rng.uniform(0.03, 0.3))
            kiosk.kill()
            driver.join(30)
            assert not driver.is_alive()
            saw_done = "done" in kiosk.screens[seen_from:]
            kiosk.emulator.lift_finger()
            kiosk.start()
            new = [p for p in kiosk.payloads_after(before) if p["type"] in VISIT_TYPES]
            assert len(new) <= 1, new  # one visit, one record at most
            if saw_done:
                assert [(p["type"], p["person"]) for p in new] == [("checkin", person.ref)]
                outcomes["done"] += 1
            elif new and new[0]["type"] == "fault":
                assert new[0]["person"] == person.ref
                assert new[0]["detail"]["reason"] == "restarted"
                outcomes["fault"] += 1
            elif new:  # saved, and killed before the screen said so
                assert new[0]["person"] == person.ref
                outcomes["saved_unseen"] += 1
            else:
                outcomes["nothing"] += 1
            kiosk.wait_for(lambda e: e["screen"] == "idle", "the idle screen after a restart")
        key = FileKeyBackend(kiosk.data_dir / "device-key.pem").load().public_key()
        verify_chain(kiosk.compacts(), key, "kiosk-bench")
    return outcomes


@pytest.mark.slow
def test_killed_mid_check_in_again_and_again_keeps_what_the_person_was_told(
    tmp_path: Path,
) -> None:
    outcomes = _campaign(tmp_path, episodes=24, seed=7)
    assert sum(outcomes.values()) == 24
    # the campaign reached the interesting moments, not only the ends
    assert outcomes["fault"] >= 2 and outcomes["done"] >= 2, outcomes


@pytest.mark.soak
def test_killed_mid_check_in_soak(tmp_path: Path) -> None:
    outcomes = _campaign(tmp_path, episodes=400, seed=int(time.time()))
    assert outcomes["fault"] >= 10, outcomes
