"""Run every benchmark: ``python -m hil.bench [name ...]`` (see hil/bench/__init__.py)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

from hil.bench import MODULES, Figure


def _meets(value: float, target: str) -> bool | None:
    op, _, num = target.partition(" ")
    try:
        bound = float(num)
    except ValueError:
        return None
    return {
        "<=": value <= bound,
        ">=": value >= bound,
        "<": value < bound,
        ">": value > bound,
        "=": value == bound,
    }.get(op)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hil.bench",
        description="Run the benchmarks (all of them, or those named), print one line per "
        "figure and write bench-results.json (docs/benchmarks.md).",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"a benchmark module: {', '.join(MODULES)} (default: all)",
    )  # fmt: skip
    wanted = parser.parse_args(argv if argv is not None else sys.argv[1:]).names or MODULES
    unknown = [name for name in wanted if name not in MODULES]
    if unknown:
        parser.error(f"no benchmark {unknown[0]!r}: choose from {', '.join(MODULES)}")
    figures: dict[str, Figure] = {}
    for name in wanted:
        module = importlib.import_module(f"hil.bench.{name}")
        got: dict[str, Figure] = module.figures()
        for key, fig in got.items():
            target = fig.get("target")
            verdict = ""
            if target:
                ok = _meets(float(fig["value"]), target)
                verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
            extra = f"  (target {target})" if target else ""
            print(f"{key:34s} {fig['value']:>12.4g} {fig['unit']:<10s}{extra}{verdict}", flush=True)
        figures.update(got)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "figures": figures,
    }
    out = Path(__file__).resolve().parents[2] / "bench-results.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
