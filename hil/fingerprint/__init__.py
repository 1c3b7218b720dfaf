"""The fingerprint sensor emulator and synthetic identities for tests, the demo and the rig.

- :func:`make_template` — the enrolled template of a synthetic (person, finger), as the roster
  would carry it (deterministic);
- :class:`SensorEmulator` — the protocol-faithful sensor on a pty (:meth:`start_pty`) or an
  in-memory link (:meth:`connect`), with ``present_finger`` / ``lift_finger`` / ``inject``;
- ``python -m hil.fingerprint --pty`` — the same from the command line (see __main__).

May import: the standard library, drivers.fingerprint.codec/link.
"""

from __future__ import annotations

from hil.fingerprint.emulator import Fault, SensorEmulator, Stats
from hil.fingerprint.fingers import Condition, VirtualFinger, make_template
from hil.fingerprint.models import MODELS, SensorModel, model

__all__ = [
    "MODELS",
    "Condition",
    "Fault",
    "SensorEmulator",
    "SensorModel",
    "Stats",
    "VirtualFinger",
    "make_template",
    "model",
]
