"""Fixtures shared by the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.outbox import Outbox
from tests.core.helpers import open_outbox, synthetic_checkin


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    """An outbox holding five pending check-ins (seq 1-5), for the sync client tests."""
    ob = open_outbox(tmp_path)
    for i in range(5):
        ob.append("checkin", synthetic_checkin(i))
    return ob
