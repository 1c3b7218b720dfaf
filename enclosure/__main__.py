"""``python -m enclosure [--check]``: see the package docstring."""

from __future__ import annotations

import argparse
import sys

from drivers.gpio.pinmap import load_pinmap
from enclosure import camera_aim, check, load, outputs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m enclosure", description=__doc__)
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if anything is wrong or stale"
    )
    args = ap.parse_args(argv)
    layout, pinmap = load(), load_pinmap()
    problems = check(layout, pinmap)
    for p in problems:
        print(f"enclosure: {p}", file=sys.stderr)
    if problems:
        return 1
    stale = [path for path, text in outputs(layout, pinmap).items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]  # fmt: skip
    if args.check:
        for path in stale:
            print(
                f"enclosure: {path.name} is out of date: run `python -m enclosure`", file=sys.stderr
            )
        return 1 if stale else 0
    for path, text in outputs(layout, pinmap).items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")
    tilt, needed = camera_aim(layout)
    print(f"checks pass; camera tilt {tilt:+.0f} deg (needs {needed:.0f} deg of view)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
