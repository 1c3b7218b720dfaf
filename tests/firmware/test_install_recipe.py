"""Every unit the project ships is installed, enabled and runs a program the install makes.

The boot tests (tests/system) prove the installed units under real systemd; this checks the
recipe and the unit files against each other on any host, so a unit pointing at a path the
install never creates (a touchscreen that could never start, and every update's self-test
failing with it) is caught without booting anything.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
RECIPE = (ROOT / "firmware" / "rootfs" / "install-kiosk.sh").read_text()
SCRIPTS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
VENV_BIN = "/opt/kiosk/bin/"


def test_there_are_units_to_check() -> None:
    assert {u.name for u in UNITS} >= {"kiosk.service", "kiosk-sync.service", "kiosk-ui.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_recipe_installs_and_enables_the_unit(unit: Path) -> None:
    assert f'"$src/systemd/{unit.name}"' in RECIPE, f"install-kiosk.sh does not install {unit}"
    enable = re.search(r"systemctl enable(?:[^\n\\]|\\\n)*", RECIPE)
    assert enable and unit.name in enable.group(0), f"install-kiosk.sh does not enable {unit}"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_runs_a_program_the_install_creates(unit: Path) -> None:
    starts = re.findall(r"(?m)^ExecStart=(.+)$", unit.read_text())
    assert starts, f"{unit.name} has no ExecStart"
    for line in starts:
        program = shlex.split(line.lstrip("-@:+!"))[0]
        assert program.startswith(VENV_BIN), f"{unit.name}: {program} is not in the kiosk venv"
        name = program.removeprefix(VENV_BIN)
        assert name in SCRIPTS | {"python"}, f"{unit.name}: nothing installs {program}"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_is_wanted_by_a_target_the_lite_image_reaches(unit: Path) -> None:
    """Raspberry Pi OS Lite boots to multi-user.target; graphical.target is never reached."""
    wanted = re.findall(r"(?m)^(?:WantedBy|RequiredBy)=(.+)$", unit.read_text())
    assert wanted, f"{unit.name} is wanted by nothing"
    assert "graphical.target" not in " ".join(wanted), unit.name


def test_the_venv_sees_the_systems_packages_for_picamera2() -> None:
    assert "python3 -m venv --system-site-packages /opt/kiosk" in RECIPE
