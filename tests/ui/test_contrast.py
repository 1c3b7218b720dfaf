"""Text contrast from the page's colour tokens (WCAG 2.2 SC 1.4.3: ≥ 4.5:1; we aim at 7:1)."""

from __future__ import annotations

import re

from daemon.ui.server import STATIC_DIR
from tests.ui.contrast import contrast


def tokens() -> dict[str, str]:
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    root = re.search(r":root\s*\{([^}]*)\}", css)
    assert root is not None
    return dict(re.findall(r"--([\w-]+)\s*:\s*(#[0-9a-fA-F]{3,6})\s*;", root.group(1)))


def pairs() -> dict[str, tuple[str, str]]:
    t = tokens()
    names = {k[: -len("-fg")] for k in t if k.endswith("-fg")}
    assert names == {k[: -len("-bg")] for k in t if k.endswith("-bg")}, "every -fg has a -bg"
    return {n: (t[f"{n}-fg"], t[f"{n}-bg"]) for n in sorted(names)}


def test_formula_against_known_values() -> None:
    assert round(contrast("#000", "#fff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # the classic just-failing grey
    assert contrast("#fff", "#fff") == 1.0


def test_every_colour_pair_reaches_seven_to_one() -> None:
    found = pairs()
    assert len(found) >= 10
    ratios = {name: round(contrast(fg, bg), 2) for name, (fg, bg) in found.items()}
    assert all(r >= 4.5 for r in ratios.values()), ratios  # WCAG 2.2 AA
    assert all(r >= 7.0 for r in ratios.values()), ratios  # our aim (AAA)


def test_page_text_on_every_coloured_surface_is_readable() -> None:
    t = tokens()
    # Text that sits on a surface other than its own pair's background.
    for fg, bg in [("page-fg", "secondary-bg"), ("page-fg", "note-bg"), ("error-fg", "page-bg")]:
        assert contrast(t[fg], t[bg]) >= 7.0, (fg, bg)
