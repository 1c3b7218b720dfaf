"""Benchmarks for `make bench`.

Each benchmark module in this package exposes ``figures() -> dict[str, Figure]`` and is
listed in ``MODULES``; ``python -m hil.bench`` runs them all, prints one line per figure and
writes ``bench-results.json`` at the repository root (format: docs/benchmarks.md and
../shared/design/BENCHMARKS.md). Figures are ratios measured side by side in one run where a
baseline or a physical floor exists.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Figure(TypedDict):
    value: float
    unit: str
    target: NotRequired[str]
    baseline: NotRequired[str]
    note: NotRequired[str]


# Module names under hil.bench, run in this order.
MODULES: list[str] = ["outbox", "sync", "fingerprint", "checkin", "ui", "faults"]
