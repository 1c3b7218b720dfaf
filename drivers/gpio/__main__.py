"""``python -m drivers.gpio``: print the wiring table from the pin map;
``python -m drivers.gpio docs/drivers.md``: rewrite the table in that document."""

from __future__ import annotations

import sys
from pathlib import Path

from drivers.gpio.pinmap import load_pinmap, update_doc, wiring_table


def main(argv: list[str]) -> int:
    if argv:
        changed = update_doc(Path(argv[0]), load_pinmap())
        print(f"{argv[0]}: {'updated' if changed else 'already up to date'}")
    else:
        print(wiring_table(load_pinmap()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
