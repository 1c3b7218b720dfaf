"""The tryboot A/B slots: an update boots once as a trial and is kept only when proven; any
failure of the trial (crash, power cut, failed self-test) leaves the kiosk on the old system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.bootslots import Autoboot, BootSlotError
from tests.updates.card import Card

A, B = 2, 3


@pytest.fixture
def card(tmp_path: Path) -> Card:
    return Card(tmp_path)


def install_into_b(card: Card) -> None:
    """What RAUC asks of the backend when it installs into slot B: bad while written, then
    primary."""
    slots = card.slots()
    slots.set_state("B", False)
    slots.set_primary("B")


def test_a_new_card_boots_a_and_both_slots_are_good(card: Card) -> None:
    slots = card.slots()
    assert (slots.booted(), slots.is_trial(), slots.committed(), slots.primary()) == (
        "A", False, "A", "A"
    )  # fmt: skip
    assert slots.state("A") == slots.state("B") == "good"
    assert slots.pending_failure() is None


def test_an_installed_update_is_only_tried_never_made_the_default(card: Card) -> None:
    install_into_b(card)
    slots = card.slots()
    assert slots.primary() == "B" and slots.committed() == "A"
    assert card.power_on() == A  # a plain reboot or a power cut: still the old system
    assert card.power_on(tryboot=True) == B  # only the one-shot trial reboot reaches B


def test_a_trial_that_passes_its_self_test_becomes_the_default(card: Card) -> None:
    install_into_b(card)
    assert card.slots().start_trial() == "B"
    card.power_on(tryboot=True)
    slots = card.slots()
    assert (slots.booted(), slots.is_trial()) == ("B", True)
    slots.set_state("B", True)  # rauc status mark-good booted
    assert slots.committed() == "B" and slots.primary() == "B"
    assert card.power_on() == B
    assert card.slots().pending_failure() is None


def test_a_trial_that_dies_before_reporting_comes_back_on_the_old_slot(card: Card) -> None:
    install_into_b(card)
    card.slots().start_trial()
    card.power_on(tryboot=True)  # ... and then the power goes, or the watchdog bites
    assert card.power_on() == A  # the firmware forgot the one-shot request
    slots = card.slots()
    assert slots.pending_failure() == "B"
    slots.give_up_trial("B")
    assert (slots.committed(), slots.primary(), slots.state("B")) == ("A", "A", "bad")
    assert slots.pending_failure() is None
    assert card.power_on(tryboot=True) == A  # a stray trial reboot cannot reach the bad slot


def test_a_trial_that_fails_its_self_test_is_marked_bad_and_not_tried_again(card: Card) -> None:
    install_into_b(card)
    card.slots().start_trial()
    card.power_on(tryboot=True)
    card.slots().set_state("B", False)  # rauc status mark-bad booted
    assert card.power_on() == A
    slots = card.slots()
    assert (slots.committed(), slots.state("B"), slots.pending_failure()) == ("A", "bad", None)
    with pytest.raises(BootSlotError, match="no update is waiting"):
        slots.start_trial()


def test_the_only_known_good_slot_cannot_be_marked_bad_during_a_trial(card: Card) -> None:
    install_into_b(card)
    card.slots().start_trial()
    card.power_on(tryboot=True)
    before = card.autoboot.read_bytes()
    with pytest.raises(BootSlotError, match="only system known to work") as err:
        card.slots().set_state("A", False)  # RAUC starting to install over slot A
    assert "kioskctl selftest --commit" in str(err.value)
    assert card.autoboot.read_bytes() == before


def test_reinstalling_over_a_bad_slot_makes_it_triable_again(card: Card) -> None:
    install_into_b(card)
    card.slots().start_trial()
    card.power_on(tryboot=True)
    card.slots().set_state("B", False)
    card.power_on()
    install_into_b(card)  # a fixed bundle
    assert card.slots().primary() == "B" and card.slots().state("B") == "good"


def test_the_file_is_replaced_whole_and_keeps_the_firmware_syntax(card: Card) -> None:
    install_into_b(card)
    text = card.autoboot.read_text()
    assert "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n" in text
    assert not list(card.autoboot_dir.glob(".*tmp"))
    assert Autoboot.parse(text) == Autoboot(committed=2, trial=3, bad=frozenset(), trying=None)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[all]\nboot_partition=2\n", "not made by the kiosk image recipe"),
        ("[all]\ntryboot_a_b=1\nboot_partition=two\n", "must be a number"),
        ("[all]\ntryboot_a_b=1\nboot_partition\n", "expected key=value"),
        ("[all]\ntryboot_a_b=1\nboot_partition=7\n", "partition 7 is not a system slot"),
    ],
)
def test_a_damaged_autoboot_file_is_refused_with_what_to_do(
    card: Card, text: str, match: str
) -> None:
    card.autoboot.write_text(text)
    with pytest.raises(BootSlotError, match=match):
        card.slots().set_primary("B")
    assert card.autoboot.read_text() == text  # nothing rewritten on a guess


def test_a_missing_partition_or_device_tree_says_what_is_wrong(card: Card) -> None:
    card.autoboot.unlink()
    with pytest.raises(BootSlotError, match=r"is the autoboot partition .* mounted"):
        card.slots().primary()
    (card.devicetree / "partition").unlink()
    with pytest.raises(BootSlotError, match="not booted by the Raspberry Pi firmware"):
        card.slots().booted()
    (card.devicetree / "partition").write_bytes(b"\x00\x02")
    with pytest.raises(BootSlotError, match="4-byte"):
        card.slots().booted()


def backend(card: Card, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.bootslots", *args],
        env={**os.environ, **card.env()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_rauc_backend_command_answers_on_stdout_and_fails_on_stderr(card: Card) -> None:
    assert backend(card, "get-primary").stdout == "A\n"
    assert backend(card, "get-current").stdout == "A\n"
    assert backend(card, "set-state", "B", "bad").returncode == 0
    assert backend(card, "get-state", "B").stdout == "bad\n"
    assert backend(card, "set-primary", "B").returncode == 0
    assert backend(card, "get-primary").stdout == "B\n"
    status = backend(card, "status").stdout
    assert "committed: A" in status and "next try:  B" in status
    wrong = backend(card, "set-primary", "C")
    assert wrong.returncode == 1 and "unknown slot 'C'" in wrong.stderr and not wrong.stdout
    assert backend(card, "set-state", "B", "maybe").returncode == 2
    assert backend(card, "frobnicate").returncode == 2


def test_the_shipped_autoboot_file_is_what_the_backend_writes_for_a_new_card() -> None:
    shipped = Path(__file__).resolve().parents[2] / "firmware" / "boot" / "autoboot.txt"
    assert Autoboot.parse(shipped.read_text()) == Autoboot(committed=A, trial=A)
    assert shipped.read_text() == Autoboot(committed=A, trial=A).render()


def test_the_boot_record_tells_the_central_team_about_slots_and_rejections(card: Card) -> None:
    from daemon.bootslots import summary

    assert summary({"KIOSK_AUTOBOOT_DIR": "/nonexistent"}) is None
    assert summary(card.env()) == {"booted": "A", "trial": False, "committed": "A", "bad": []}
    install_into_b(card)
    card.slots().start_trial()
    card.power_on(tryboot=True)
    assert summary(card.env()) == {"booted": "B", "trial": True, "committed": "A", "bad": []}
    card.slots().set_state("B", False)
    card.power_on()
    assert summary(card.env()) == {"booted": "A", "trial": False, "committed": "A", "bad": ["B"]}
    card.autoboot.write_text("garbage\n")
    assert summary(card.env()) == {"error": "boot_slots"}
