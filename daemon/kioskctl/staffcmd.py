"""``kioskctl staff``: who may open the kiosk's staff mode, each with their own PIN.

Records of what is done in staff mode (an attendance recorded for someone, a lock lifted,
alerts cleared) name the member of staff by the id given here, so each person needs their own
PIN: a shared one makes every record say "staff". Ids are staff numbers or short handles, not
names (records leave the building).

    kioskctl staff list
    kioskctl staff add ID [--pin-stdin]      asks for the PIN twice (4-12 digits)
    kioskctl staff remove ID                 ``staff`` removes the shared PIN

The configuration is edited in place (daemon/kioskctl/tomlout.py: checked to load first; its
comments, layout, owner, group and mode kept; replaced atomically); kiosk.service reads it
when it starts, so the command ends by saying to restart it when nobody is checking in.

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import argparse
import getpass
import itertools
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from daemon.config import Config
from daemon.errors import KioskError, UsageError
from daemon.kiosk import check_staff, hash_pin
from daemon.kioskctl.tomlout import write_config
from daemon.purposes import OPERATOR_ID

PIN_MIN, PIN_MAX = 4, 12
RESTART = "restart kiosk.service when nobody is checking in: systemctl restart kiosk"


class StaffError(KioskError):
    reason = "staff"


def pin_problem(pin: str) -> str | None:
    """Why ``pin`` may not be a staff PIN, or None."""
    if not pin.isdigit() or not PIN_MIN <= len(pin) <= PIN_MAX:
        return f"a staff PIN is {PIN_MIN} to {PIN_MAX} digits"
    if len(set(pin)) == 1:
        return "a PIN of one digit repeated is the first anyone tries"
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {-1}):
        return "a PIN counting up or down is the first anyone tries"
    return None


def _ask(prompt: str, pin_stdin: bool) -> str:
    if pin_stdin:  # scripts: one line per question
        return sys.stdin.readline().strip()
    return getpass.getpass(prompt)


def run(
    args: argparse.Namespace, cfg: Config, out: TextIO, ask: Callable[[str, bool], str] = _ask
) -> int:
    staff = cfg.staff
    if args.staff_command == "list":
        for member in staff.members:
            print(member.id, file=out)
        if staff.pin_hash:
            print("staff (the shared PIN: records cannot tell who used it)", file=out)
        if not staff.members and not staff.pin_hash:
            print("no staff PINs: staff mode cannot be opened on this kiosk", file=out)
        return 0
    if args.id != "staff" and not OPERATOR_ID.fullmatch(args.id):
        # not repeated back: what does not look like a staff id may well be someone's name
        raise UsageError(
            "that is not a staff id: use 1-32 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit: a staff number or short handle such as "
            "rec-0412, never a person's name (records leave the building). Nothing was "
            "changed."
        )
    path: Path = args.config
    table: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    section: dict[str, Any] = dict(table.get("staff", {}))
    members: list[dict[str, str]] = [dict(m) for m in section.get("members", [])]
    if args.staff_command == "remove":
        if args.id == "staff" and section.get("pin_hash"):
            section.pop("pin_hash")
        elif any(m["id"] == args.id for m in members):
            members = [m for m in members if m["id"] != args.id]
        else:
            raise StaffError(f"no staff PIN with the id {args.id!r} (see `kioskctl staff list`)")
        _save(path, table, section, members)
        print(f"{args.id} can no longer open staff mode; {RESTART}", file=out)
        return 0
    if args.id == "staff" or any(m["id"] == args.id for m in members):
        raise StaffError(
            f"the id {args.id!r} is taken; remove it first or choose another (a staff number)"
        )
    pin = ask(f"PIN for {args.id}: ", args.pin_stdin)
    problem = pin_problem(pin)
    if problem:
        raise StaffError(f"{problem}; nothing was changed")
    if ask("the same PIN again: ", args.pin_stdin) != pin:
        raise StaffError("the two PINs differ; nothing was changed")
    if check_staff(pin, staff) is not None:  # one PIN, one person: else records could lie
        raise StaffError("another member of staff has that PIN; choose another")
    members.append({"id": args.id, "pin_hash": hash_pin(pin)})
    _save(path, table, section, members)
    print(f"{args.id} can open staff mode with their PIN; {RESTART}", file=out)
    return 0


def _save(
    path: Path, table: dict[str, Any], section: dict[str, Any], members: list[dict[str, str]]
) -> None:
    if members:
        section["members"] = members
    else:
        section.pop("members", None)
    table["staff"] = section
    write_config(path, table)  # checks that it loads before replacing the file
