"""A/B system slots on a Raspberry Pi, switched with the firmware's ``tryboot``, and the
backend RAUC calls to read and change them (``bootloader=custom``).

The card (see docs/updates.md): partition 1 is a small FAT partition holding only
``autoboot.txt``; partitions 2 and 3 are the boot partitions of slots A and B (firmware,
kernel, ``cmdline.txt`` with ``rauc.slot=A|B``), each paired with its own root; the data
partition (the outbox) is shared. With ``tryboot_a_b=1`` the firmware boots the ``[all]``
partition, or the ``[tryboot]`` one when the previous reboot asked for it (``reboot "0
tryboot"``). That request is one-shot and cleared before the new system starts, so a trial
system that crashes, hangs until the watchdog bites, or loses power comes back on the old slot
by itself. Only after the trial system has passed its self-test (``kioskctl selftest
--commit``) is ``[all]`` rewritten to point at it.

Our own bookkeeping rides in ``autoboot.txt`` as a comment line the firmware ignores, so one
atomic file replacement (temp file, fsync, rename, fsync the folder) changes everything at
once::

    # kiosk-slots: bad=B trying=B

``bad``: slots RAUC marked bad (being written, or failed their trial). ``trying``: the slot a
trial reboot was started for; seen again from the old slot, it means the trial failed.

Safety rule: while the booted system is itself an unproven trial, the committed slot (the only
one known to work) may not be marked bad, so nothing can install over it.

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from daemon.errors import KioskError

#: bootname → boot partition number (the image recipe's layout)
PARTITIONS: Mapping[str, int] = {"A": 2, "B": 3}
DEVICETREE = Path("/proc/device-tree/chosen/bootloader")
AUTOBOOT_DIR = Path("/boot/autoboot")
STATE_PREFIX = "# kiosk-slots:"


class BootSlotError(KioskError):
    reason = "boot_slots"


@dataclass(frozen=True)
class Autoboot:
    """What ``autoboot.txt`` says: the committed partition, the trial one, our state."""

    committed: int
    trial: int
    bad: frozenset[str] = field(default_factory=frozenset)
    trying: str | None = None

    def render(self) -> str:
        state = [f"bad={','.join(sorted(self.bad))}"] if self.bad else []
        if self.trying:
            state.append(f"trying={self.trying}")
        lines = [
            "# Written by kiosk-bootslots (docs/updates.md). Do not edit while an update runs.",
            f"{STATE_PREFIX} {' '.join(state)}".rstrip(),
            "[all]",
            "tryboot_a_b=1",
            f"boot_partition={self.committed}",
            "[tryboot]",
            f"boot_partition={self.trial}",
            "",
        ]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str, where: str = "autoboot.txt") -> Autoboot:
        section = "all"
        parts: dict[str, int] = {}
        bad: frozenset[str] = frozenset()
        trying: str | None = None
        ab = False
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith(STATE_PREFIX):
                for item in line[len(STATE_PREFIX) :].split():
                    key, _, value = item.partition("=")
                    if key == "bad":
                        bad = frozenset(v for v in value.split(",") if v)
                    elif key == "trying":
                        trying = value or None
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip().lower()
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep:
                raise BootSlotError(f"{where} line {n}: expected key=value, got {line[:40]!r}")
            if key == "tryboot_a_b":
                ab = value.strip() == "1"
            elif key == "boot_partition":
                try:
                    parts[section] = int(value.strip())
                except ValueError:
                    raise BootSlotError(
                        f"{where} line {n}: boot_partition must be a number"
                    ) from None
        if "all" not in parts or not ab:
            raise BootSlotError(
                f"{where} does not set tryboot_a_b=1 and an [all] boot_partition: this card was "
                "not made by the kiosk image recipe. Re-flash it (kioskctl flash) or restore "
                "autoboot.txt from docs/updates.md."
            )
        return cls(parts["all"], parts.get("tryboot", parts["all"]), bad, trying)


def _read_u32(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) != 4:
        raise BootSlotError(f"{path} is not a 4-byte device-tree cell ({len(data)} bytes)")
    return int.from_bytes(data, "big")


class TrybootSlots:
    """The A/B state of this card. ``autoboot_dir``: where partition 1 is mounted;
    ``devicetree``: the firmware's ``chosen/bootloader`` node."""

    def __init__(
        self,
        autoboot_dir: Path = AUTOBOOT_DIR,
        devicetree: Path = DEVICETREE,
        partitions: Mapping[str, int] = PARTITIONS,
    ) -> None:
        self.path = Path(autoboot_dir) / "autoboot.txt"
        self.devicetree = Path(devicetree)
        self.partitions = dict(partitions)
        self._names = {n: name for name, n in self.partitions.items()}

    # --- reading ------------------------------------------------------------------------------
    def read(self) -> Autoboot:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise BootSlotError(
                f"{self.path} is missing: is the autoboot partition (partition 1) mounted at "
                f"{self.path.parent}? See docs/updates.md."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BootSlotError(f"cannot read {self.path}: {exc}") from exc
        ab = Autoboot.parse(text, str(self.path))
        for n in (ab.committed, ab.trial):
            self._name(n)
        return ab

    def _name(self, partition: int) -> str:
        try:
            return self._names[partition]
        except KeyError:
            raise BootSlotError(
                f"partition {partition} is not a system slot (slots: "
                + ", ".join(f"{k}={v}" for k, v in sorted(self.partitions.items()))
                + ")"
            ) from None

    def _check(self, name: str) -> str:
        if name not in self.partitions:
            raise BootSlotError(
                f"unknown slot {name!r}: this kiosk has slots {', '.join(sorted(self.partitions))}"
            )
        return name

    def booted(self) -> str:
        """The slot the firmware booted (from the device tree)."""
        n = _read_u32(self.devicetree / "partition")
        if n is None:
            raise BootSlotError(
                f"{self.devicetree}/partition is missing: not booted by the Raspberry Pi "
                "firmware, so the booted slot is unknown"
            )
        return self._name(n)

    def is_trial(self) -> bool:
        """True when this boot is a tryboot (the one-shot trial of an update)."""
        return _read_u32(self.devicetree / "tryboot") == 1

    def committed(self) -> str:
        return self._name(self.read().committed)

    def primary(self) -> str:
        """The slot the next update reboot boots: the pending trial if there is one (not bad),
        else the committed slot."""
        ab = self.read()
        trial = self._name(ab.trial)
        if ab.trial != ab.committed and trial not in ab.bad:
            return trial
        return self._name(ab.committed)

    def state(self, name: str) -> str:
        return "bad" if self._check(name) in self.read().bad else "good"

    def pending_failure(self) -> str | None:
        """The slot whose trial boot failed, if we are back on the old slot after one."""
        ab = self.read()
        if ab.trying is None or self.is_trial():
            return None
        return ab.trying if self.booted() != ab.trying else None

    # --- changing -----------------------------------------------------------------------------
    def _write(self, ab: Autoboot) -> None:
        tmp = self.path.with_name(".autoboot.txt.tmp")
        data = ab.render().encode("ascii")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise BootSlotError(
                f"cannot write {self.path} ({exc.strerror}); the boot choice is unchanged"
            ) from exc

    def set_primary(self, name: str) -> None:
        """Make ``name`` the slot the next *trial* reboot boots (RAUC calls this after writing
        it). The committed slot is left alone until the trial passes its self-test."""
        self._check(name)
        ab = self.read()
        committed = self._name(ab.committed)
        if name == committed:
            self._write(replace(ab, trial=ab.committed, bad=ab.bad - {name}, trying=None))
            return
        self._write(replace(ab, trial=self.partitions[name], bad=ab.bad - {name}, trying=None))

    def set_state(self, name: str, good: bool) -> None:
        """``good``: clear a bad mark; if this is the trial system, booted as a trial, commit it.
        ``bad``: never boot it again until rewritten (refused for the only known-good slot while
        a trial runs)."""
        self._check(name)
        ab = self.read()
        committed = self._name(ab.committed)
        if not good:
            if name == committed and self.is_trial() and self.booted() != committed:
                raise BootSlotError(
                    f"slot {name} is the only system known to work and this boot is an "
                    "unproven trial: it stays bootable. Run `kioskctl selftest --commit` to "
                    "prove this system first, then install."
                )
            trial = ab.committed if self._name(ab.trial) == name else ab.trial
            trying = None if ab.trying == name else ab.trying
            self._write(replace(ab, trial=trial, bad=ab.bad | {name}, trying=trying))
            return
        bad = ab.bad - {name}
        if name != committed and self.is_trial() and self.booted() == name:
            self._write(Autoboot(self.partitions[name], self.partitions[name], bad, None))
            return
        if bad != ab.bad:  # ``trying`` is never the committed slot: nothing else to clear
            self._write(replace(ab, bad=bad))

    def start_trial(self) -> str:
        """Note that the pending trial is being started (just before ``reboot "0 tryboot"``)
        and return its slot. Raises when there is nothing to try."""
        ab = self.read()
        if ab.trial == ab.committed or self._name(ab.trial) in ab.bad:
            raise BootSlotError("no update is waiting to be tried (install one with RAUC first)")
        name = self._name(ab.trial)
        self._write(replace(ab, trying=name))
        return name

    def give_up_trial(self, name: str) -> None:
        """Back on the old slot after ``name``'s trial failed: mark it bad, forget the trial."""
        ab = self.read()
        self._write(Autoboot(ab.committed, ab.committed, ab.bad | {name}, None))


def summary(env: Mapping[str, str] | None = None) -> dict[str, object] | None:
    """For the ``boot`` record: which slot runs, whether as a trial, which is the default,
    which are marked bad. None on a machine that is not the A/B kiosk image. The central team
    sees an update kept (a boot on the new slot, then its default) or rejected (back on the
    old slot with the new one bad) without anyone at the kiosk."""
    slots = from_env(env)
    if not slots.path.exists():
        return None
    try:
        ab = slots.read()
        return {
            "booted": slots.booted(),
            "trial": slots.is_trial(),
            "committed": slots._name(ab.committed),
            "bad": sorted(ab.bad),
        }
    except BootSlotError as exc:
        return {"error": exc.reason}


# --- RAUC's custom bootloader backend --------------------------------------------------------
USAGE = """\
RAUC custom bootloader backend for the kiosk's tryboot A/B slots (docs/updates.md).
  kiosk-bootslots get-primary             the slot the next update reboot boots
  kiosk-bootslots set-primary A|B         try this slot on the next "0 tryboot" reboot
  kiosk-bootslots get-state A|B           good or bad
  kiosk-bootslots set-state A|B good|bad  good commits a passing trial; bad stops it booting
  kiosk-bootslots get-current             the slot booted now
  kiosk-bootslots status                  all of the above, for people
Paths: KIOSK_AUTOBOOT_DIR (default /boot/autoboot), KIOSK_DEVICETREE (default
/proc/device-tree/chosen/bootloader).
"""


def from_env(env: Mapping[str, str] | None = None) -> TrybootSlots:
    env = os.environ if env is None else env
    return TrybootSlots(
        Path(env.get("KIOSK_AUTOBOOT_DIR", str(AUTOBOOT_DIR))),
        Path(env.get("KIOSK_DEVICETREE", str(DEVICETREE))),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with the answer on stdout; 1 with the reason on stderr; 2 wrong usage."""
    parser = argparse.ArgumentParser(
        prog="kiosk-bootslots", description=USAGE, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("op")
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args(argv)
    slots = from_env()
    arity = {"get-primary": 0, "get-current": 0, "status": 0}
    arity |= {"set-primary": 1, "get-state": 1, "set-state": 2}
    if ns.op not in arity or len(ns.args) != arity[ns.op]:
        print(USAGE, file=sys.stderr, end="")
        return 2
    try:
        if ns.op == "get-primary":
            print(slots.primary())
        elif ns.op == "get-current":
            print(slots.booted())
        elif ns.op == "get-state":
            print(slots.state(ns.args[0]))
        elif ns.op == "set-primary":
            slots.set_primary(ns.args[0])
        elif ns.op == "set-state":
            name, value = ns.args
            if value not in ("good", "bad"):
                print(f"state must be good or bad, not {value!r}", file=sys.stderr)
                return 2
            slots.set_state(name, value == "good")
        else:
            ab = slots.read()
            print(f"booted:    {slots.booted()}{' (trial)' if slots.is_trial() else ''}")
            print(f"committed: {slots._name(ab.committed)}")
            print(f"next try:  {slots.primary()}")
            for name in sorted(slots.partitions):
                print(f"slot {name}:    {slots.state(name)}")
            if ab.trying:
                print(f"trying:    {ab.trying}")
    except BootSlotError as exc:
        print(f"kiosk-bootslots: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
