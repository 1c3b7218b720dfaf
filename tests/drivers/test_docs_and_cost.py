"""The wiring doc matches the pin map; the per-photo cost fits the check-in budget."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import ConfigError
from drivers.camera.bench import measure
from drivers.gpio import load_pinmap
from drivers.gpio.pinmap import DEFAULT_PINMAP, update_doc, wiring_table

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "drivers.md"


def test_the_wiring_table_in_the_docs_is_generated_from_the_pinmap() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert wiring_table(load_pinmap()) in text, (
        "docs/drivers.md is out of date with drivers/gpio/pinmap.toml; "
        "run: python -m drivers.gpio docs/drivers.md"
    )


def test_the_doc_updater_rewrites_a_stale_table(tmp_path: Path) -> None:
    doc = tmp_path / "drivers.md"
    shutil.copy(DOC, doc)
    pinmap_file = tmp_path / "pinmap.toml"
    pinmap_file.write_text(DEFAULT_PINMAP.read_text().replace("bcm = 24", "bcm = 25"))
    moved = load_pinmap(pinmap_file)
    assert update_doc(doc, moved)
    text = doc.read_text()
    assert "| `motion` | 25 | 22 |" in text
    assert text.endswith(DOC.read_text().split("<!-- pinmap:end -->")[1])
    assert not update_doc(doc, moved)
    (tmp_path / "plain.md").write_text("# no markers\n")
    with pytest.raises(ConfigError):
        update_doc(tmp_path / "plain.md", moved)


def test_the_cli_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "drivers.gpio"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == wiring_table(load_pinmap())


def test_per_photo_cost_leaves_room_in_the_checkin_budget() -> None:
    m = measure(n=15, warmup=2)
    assert 0 < m["seal_p50"] < m["total_p50"]
    assert 20 < m["jpeg_kb"] < 400
    # the whole check-in (finger lifted -> record durable) has p99 <= 50 ms; a photo may use
    # a fraction of it. Median, with a wide margin, so a busy shared machine does not flake.
    assert m["total_p50"] < 40, m
