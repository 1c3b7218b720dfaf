"""``python -m drivers.gpio``: print the wiring table from the pin map;
``python -m drivers.gpio docs/drivers.md``: rewrite the table in that document."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drivers.gpio.pinmap import load_pinmap, update_doc, wiring_table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m drivers.gpio",
        description="Print the wiring table from the pin map, or rewrite it in a document.",
    )
    parser.add_argument("doc", nargs="?", type=Path,
                        help="a Markdown file holding the table, e.g. docs/drivers.md")  # fmt: skip
    args = parser.parse_args(argv)
    if args.doc is not None:
        changed = update_doc(args.doc, load_pinmap())
        print(f"{args.doc}: {'updated' if changed else 'already up to date'}")
    else:
        print(wiring_table(load_pinmap()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
