"""GPIO devices of the kiosk: status light, buzzer, tamper switch, wake inputs, pin map.

Import the public names from here; :func:`open_gpio` is the one factory the composition root
calls. Importing this package touches no hardware (lgpio is imported inside ``open_gpio``).
"""

from drivers.gpio.board import GpioBoard, GpioSim, open_gpio
from drivers.gpio.interface import (
    Buzzer,
    Colour,
    GpioError,
    GpioSettings,
    LightState,
    Pattern,
    StatusLight,
    TamperSwitch,
    WakeInput,
)
from drivers.gpio.pinmap import PinMap, Signal, load_pinmap, wiring_table

__all__ = [
    "Buzzer",
    "Colour",
    "GpioBoard",
    "GpioError",
    "GpioSettings",
    "GpioSim",
    "LightState",
    "Pattern",
    "PinMap",
    "Signal",
    "StatusLight",
    "TamperSwitch",
    "WakeInput",
    "load_pinmap",
    "open_gpio",
    "wiring_table",
]
