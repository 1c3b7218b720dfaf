"""The UI draws exactly the screens the flow can ask for."""

from __future__ import annotations

from daemon.flow.state import Screen as FlowScreen
from daemon.ui.bridge import Screen as UiScreen


def test_ui_and_flow_agree_on_every_screen_name() -> None:
    assert {s.value for s in UiScreen} == {s.value for s in FlowScreen}
