"""The check-in flow: a pure state machine over immutable state (see docs/checkin-flow.md).

``state = initial(config, roster)``; then for each event, ``state, effects = step(state,
event)``; carry out the effects (daemon/app.py) and feed their results back as events;
``view(state)`` is what the touchscreen shows.

May import: the standard library and daemon.roster.
"""

from daemon.flow import effects, events
from daemon.flow.machine import light, step
from daemon.flow.state import FlowConfig, Kiosk, Screen, Session, Stage, initial
from daemon.flow.view import screen, view

__all__ = [
    "FlowConfig",
    "Kiosk",
    "Screen",
    "Session",
    "Stage",
    "effects",
    "events",
    "initial",
    "light",
    "screen",
    "step",
    "view",
]
