"""Shared pytest set-up: the ``--rig`` option for hardware-in-the-loop tests, and SoftHSM2."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.softhsm"]  # the softhsm_conf fixture (PKCS#11 token tests)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rig",
        action="store",
        default=None,
        help="serial device of a real fingerprint sensor on the HIL rig, e.g. /dev/ttyAMA0",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--rig"):
        return
    skip = pytest.mark.skip(reason="needs the HIL rig: pass --rig /dev/ttyXXX with a sensor wired")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)
