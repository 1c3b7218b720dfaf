"""The pin map: load and check the one data file that holds every pin number.

``pinmap.toml`` (beside this module) names each signal with its BCM GPIO number, direction,
pull and polarity. The daemon, the doctor checks, the wiring table in ``docs/drivers.md`` and
the enclosure drawing all read it through :func:`load_pinmap`; nothing else hard-codes a pin.

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from daemon.errors import ConfigError

DEFAULT_PINMAP = Path(__file__).with_name("pinmap.toml")

#: BCM GPIO number -> physical position on the 40-pin header (Pi 2 onwards, Pi 4, Pi 5).
HEADER_POSITION: Mapping[int, int] = MappingProxyType(
    {
        2: 3, 3: 5, 4: 7, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16, 24: 18,
        10: 19, 9: 21, 25: 22, 11: 23, 8: 24, 7: 26, 0: 27, 1: 28, 5: 29, 6: 31, 12: 32,
        13: 33, 19: 35, 16: 36, 26: 37, 20: 38, 21: 40,
    }
)  # fmt: skip

#: Signals the daemon needs; a pin map without one of them is refused.
REQUIRED = (
    "uart_tx",
    "uart_rx",
    "finger_wake",
    "status_red",
    "status_green",
    "status_blue",
    "buzzer",
    "tamper",
)
#: Signals that may be absent (left unwired).
OPTIONAL = ("motion",)
#: The fingerprint UART must sit on UART0's pins (ALT0 on GPIO14/15).
UART_PINS = {"uart_tx": 14, "uart_rx": 15}

Direction = Literal["out", "in", "uart"]
Pull = Literal["up", "down", "none"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One wired signal. ``active_high`` is the level meaning "on" (outputs) or "active"
    (inputs); ``pull`` applies to inputs only."""

    name: str
    bcm: int
    direction: Direction
    device: str
    description: str
    active_high: bool = True
    pull: Pull = "none"
    optional: bool = False

    @property
    def header_pin(self) -> int:
        """Physical position on the 40-pin header."""
        return HEADER_POSITION[self.bcm]


@dataclass(frozen=True, slots=True)
class PinMap:
    """The checked pin map. ``signals`` keeps the file's order."""

    signals: Mapping[str, Signal]
    source: Path

    def __getitem__(self, name: str) -> Signal:
        try:
            return self.signals[name]
        except KeyError:
            raise ConfigError(
                f"the pin map {self.source} has no signal {name!r}; add it (see docs/drivers.md)",
                reason="pinmap",
            ) from None

    def get(self, name: str) -> Signal | None:
        return self.signals.get(name)

    def bcm(self, name: str) -> int:
        return self[name].bcm


def _bad(source: Path, what: str) -> ConfigError:
    return ConfigError(
        f"the pin map {source} is not usable: {what}. Fix the file (see docs/drivers.md).",
        reason="pinmap",
    )


def _signal(source: Path, name: str, table: object) -> Signal:
    if not isinstance(table, dict):
        raise _bad(source, f"[signals.{name}] must be a table")
    allowed = {"bcm", "direction", "device", "description", "active_high", "pull", "optional"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _bad(
            source, f"[signals.{name}] has unknown keys {unknown}; allowed {sorted(allowed)}"
        )
    bcm = table.get("bcm")
    if type(bcm) is not int or bcm not in HEADER_POSITION:
        raise _bad(source, f"signals.{name}.bcm = {bcm!r}; use a BCM GPIO number 0..27")
    direction = table.get("direction")
    if direction not in ("out", "in", "uart"):
        raise _bad(source, f"signals.{name}.direction = {direction!r}; use out, in or uart")
    pull = table.get("pull", "none")
    if pull not in ("up", "down", "none"):
        raise _bad(source, f"signals.{name}.pull = {pull!r}; use up, down or none")
    if pull != "none" and direction != "in":
        raise _bad(source, f"signals.{name}.pull is only for inputs")
    active_high = table.get("active_high", True)
    optional = table.get("optional", False)
    if type(active_high) is not bool or type(optional) is not bool:
        raise _bad(source, f"signals.{name}: active_high and optional must be true or false")
    # gpiozero ties polarity to the pull: a pull-up input is active low, a pull-down active high
    if (pull == "up" and active_high) or (pull == "down" and not active_high):
        raise _bad(
            source,
            f"signals.{name}: pull = {pull!r} with active_high = {active_high} cannot be read "
            "(a pull-up input is active low, a pull-down input active high)",
        )
    device, description = table.get("device", ""), table.get("description", "")
    if not isinstance(device, str) or not device or not isinstance(description, str):
        raise _bad(source, f"signals.{name} needs a device name and a description")
    return Signal(name, bcm, direction, device, description, active_high, pull, optional)


def parse_pinmap(text: str, source: Path) -> PinMap:
    """Check a pin map given as TOML text. Raises :class:`ConfigError` (reason ``pinmap``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(source, f"not valid TOML ({exc})") from exc
    if doc.get("version") != 1:
        raise _bad(source, f"version = {doc.get('version')!r}; this daemon reads version 1")
    raw = doc.get("signals")
    if not isinstance(raw, dict) or not raw:
        raise _bad(source, "it has no [signals.*] tables")
    signals = {name: _signal(source, name, table) for name, table in raw.items()}
    unknown = sorted(set(signals) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise _bad(source, f"unknown signals {unknown}; known: {[*REQUIRED, *OPTIONAL]}")
    missing = [n for n in REQUIRED if n not in signals]
    if missing:
        raise _bad(source, f"required signals missing: {', '.join(missing)}")
    for name, bcm in UART_PINS.items():
        if signals[name].bcm != bcm or signals[name].direction != "uart":
            raise _bad(source, f"{name} must be direction uart on BCM {bcm} (UART0)")
    seen: dict[int, str] = {}
    for sig in signals.values():
        if sig.bcm in seen:
            raise _bad(source, f"BCM {sig.bcm} is used by both {seen[sig.bcm]} and {sig.name}")
        seen[sig.bcm] = sig.name
        if sig.direction != "uart" and sig.bcm in UART_PINS.values():
            raise _bad(source, f"{sig.name} uses BCM {sig.bcm}, which is the sensor's UART")
    return PinMap(MappingProxyType(signals), source)


def load_pinmap(path: Path | None = None) -> PinMap:
    """Read and check the pin map (default: the packaged ``pinmap.toml``).

    Raises :class:`ConfigError` (reason ``pinmap``) saying what to fix.
    """
    source = path or DEFAULT_PINMAP
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(source, f"it cannot be read ({exc.__class__.__name__})") from exc
    return parse_pinmap(text, source)


def wiring_table(pinmap: PinMap) -> str:
    """The Markdown wiring table for ``docs/drivers.md``, generated from the pin map."""
    lines = [
        "| signal | BCM | header pin | direction | active | device | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in pinmap.signals.values():
        if s.direction == "uart":
            active = "—"
        else:
            active = "high" if s.active_high else "low"
            if s.pull != "none":
                active += f", pull-{s.pull}"
        notes = s.description + (" (optional)" if s.optional else "")
        lines.append(
            f"| `{s.name}` | {s.bcm} | {s.header_pin} | {s.direction} | {active} | {s.device} "
            f"| {notes} |"
        )
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, pinmap: PinMap) -> bool:
    """Rewrite the wiring table between the ``<!-- pinmap:begin -->`` and ``<!-- pinmap:end
    -->`` markers of ``doc``; returns True when the file changed."""
    text = doc.read_text(encoding="utf-8")
    begin, end = "<!-- pinmap:begin -->\n", "<!-- pinmap:end -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    if not rest or end not in rest:
        raise _bad(doc, "the document has no pinmap:begin / pinmap:end markers")
    new = head + begin + wiring_table(pinmap) + end + tail
    if new == text:
        return False
    doc.write_text(new, encoding="utf-8")
    return True
