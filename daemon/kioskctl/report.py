"""Doctor results: one :class:`Check` per thing looked at, rendered as a table or JSON.

May import: the standard library.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]
_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome. ``fix`` says what to do next (empty when it passed)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def passed(name: str, detail: str) -> Check:
    return Check(name, "pass", detail)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name, "warn", detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def exit_status(checks: Sequence[Check]) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    return 1 if any(c.status == "fail" for c in checks) else 0


def to_json(checks: Sequence[Check]) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "warn", "fail")}
    return json.dumps(
        {"ok": not counts["fail"], "counts": counts, "checks": [asdict(c) for c in checks]},
        indent=2,
    )


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines or [""]


def to_table(checks: Sequence[Check], width: int | None = None) -> str:
    """A table a person reads on an 80-column terminal: status, check, detail, and the fix
    on its own indented line under every warning or failure."""
    width = width or max(60, min(120, shutil.get_terminal_size((100, 24)).columns))
    name_w = max([len(c.name) for c in checks] + [5])
    detail_w = max(20, width - name_w - 8)
    out = [f"{'':4}  {'check':<{name_w}}  detail", f"{'':4}  {'-' * name_w}  {'-' * detail_w}"]
    for c in checks:
        lines = _wrap(c.detail, detail_w)
        out.append(f"{_MARK[c.status]:<4}  {c.name:<{name_w}}  {lines[0]}")
        out.extend(f"{'':4}  {'':<{name_w}}  {more}" for more in lines[1:])
        if c.fix and c.status != "pass":
            for i, more in enumerate(_wrap(c.fix, detail_w - 5)):
                out.append(f"{'':4}  {'':<{name_w}}  {'fix: ' if i == 0 else '     '}{more}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "warn", "fail")}
    out.append("")
    warnings = "1 warning" if counts["warn"] == 1 else f"{counts['warn']} warnings"
    out.append(f"{counts['pass']} passed, {warnings}, {counts['fail']} failed")
    return "\n".join(out)
