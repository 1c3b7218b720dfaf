"""The kiosk enclosure: the front-panel layout as data (``layout.toml``), its checks, and the
drawings made from it and from the pin map (``drivers/gpio/pinmap.toml``).

    python -m enclosure            regenerate front.svg, wiring.svg and README.md's parts list
    python -m enclosure --check    exit 1 if a check fails or a drawing is out of date

The checks are what an installer would otherwise find out on the wall: every operable part
within the reach band (BS 8300-2: 750-1200 mm), the camera seeing every face height from a
seated wheelchair user to a tall adult at the standing distance, every wired part in the pin
map and every pin-map device in the parts list, and openings inside the panel, not overlapping.

May import: the standard library, ``drivers.gpio``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.gpio.pinmap import HEADER_POSITION, PinMap

HERE = Path(__file__).resolve().parent
LAYOUT = HERE / "layout.toml"
#: margin the camera's vertical field of view keeps beyond the face band, degrees
CAMERA_MARGIN_DEG = 2.0


class LayoutError(Exception):
    """The layout breaks a check; the message says which and by how much."""


@dataclass(frozen=True)
class Opening:
    name: str
    kind: str
    part: str
    x: float
    y: float
    width: float = 0.0
    height: float = 0.0
    diameter: float = 0.0

    def box(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) on the panel."""
        if self.diameter:
            r = self.diameter / 2
            return self.x - r, self.y - r, self.x + r, self.y + r
        return self.x, self.y, self.x + self.width, self.y + self.height


@dataclass(frozen=True)
class Layout:
    raw: dict[str, Any]
    openings: tuple[Opening, ...]
    parts: tuple[dict[str, Any], ...]

    @property
    def panel(self) -> dict[str, Any]:
        return dict(self.raw["panel"])

    def floor_height(self, y: float) -> float:
        return float(self.panel["mount_height"]) + y

    def opening(self, kind: str) -> Opening:
        return next(o for o in self.openings if o.kind == kind)


def load(path: Path = LAYOUT) -> Layout:
    return from_dict(tomllib.loads(path.read_text(encoding="utf-8")))


def from_dict(raw: dict[str, Any]) -> Layout:
    openings = tuple(Opening(**o) for o in raw.get("openings", []))
    return Layout(raw, openings, tuple(raw.get("parts", [])))


def camera_aim(layout: Layout) -> tuple[float, float]:
    """(tilt in degrees, up positive; the field of view needed in degrees) for the camera to
    see from ``face_low`` to ``face_high`` at ``standing_distance``."""
    site = layout.raw["site"]
    cam = layout.floor_height(layout.opening("camera").y)
    d = float(site["standing_distance"])
    up = math.degrees(math.atan2(float(site["face_high"]) - cam, d))
    down = math.degrees(math.atan2(float(site["face_low"]) - cam, d))
    return (up + down) / 2, up - down


def check(layout: Layout, pinmap: PinMap) -> list[str]:
    """Every broken rule, as a sentence with the numbers; empty when the layout is good."""
    problems: list[str] = []
    panel = layout.panel
    low, high = (float(layout.raw["checks"][k]) for k in ("reach_low", "reach_high"))
    for o in layout.openings:
        left, bottom, right, top = o.box()
        if left < 0 or bottom < 0 or right > panel["width"] or top > panel["height"]:
            problems.append(
                f"{o.name} does not fit on the {panel['width']} x {panel['height']} panel"
            )
        if o.kind == "screen":
            lo, hi = layout.floor_height(bottom), layout.floor_height(top)
        elif o.kind in ("sensor", "socket"):  # a finger, a headphone plug: its centre
            lo = hi = layout.floor_height(o.y)
        else:
            continue
        if lo < low or hi > high:
            problems.append(
                f"{o.name} spans {lo:.0f}-{hi:.0f} mm above the floor; operable parts belong "
                f"within {low:.0f}-{high:.0f} mm (move it or change mount_height)"
            )
    for a_i, a in enumerate(layout.openings):
        for b in layout.openings[a_i + 1 :]:
            al, ab, ar, at = a.box()
            bl, bb, br, bt = b.box()
            if al < br and bl < ar and ab < bt and bb < at:
                problems.append(f"{a.name} and {b.name} overlap")
    camera = next((p for p in layout.parts if p["part"] == "camera"), None)
    if camera is None:
        problems.append("no camera in the parts list")
    else:
        _tilt, needed = camera_aim(layout)
        fov = float(camera["vertical_fov"])
        if needed + 2 * CAMERA_MARGIN_DEG > fov:
            problems.append(
                f"the camera must see {needed:.0f} degrees vertically (faces "
                f"{layout.raw['site']['face_low']}-{layout.raw['site']['face_high']} mm at "
                f"{layout.raw['site']['standing_distance']} mm) but its lens sees {fov:.0f}: "
                "use a wider lens or move the camera"
            )
    listed = {p["part"] for p in layout.parts}
    for o in layout.openings:
        if o.part not in listed:
            problems.append(f"{o.name} is for {o.part!r}, which is not in the parts list")
    wired = {str(p["device"]) for p in layout.parts if p.get("device")}
    devices = {s.device for s in pinmap.signals.values()}
    for device in sorted(devices - wired):
        problems.append(f"the pin map wires {device!r}, which is not in the parts list")
    for device in sorted(wired - devices):
        problems.append(f"the parts list wires {device!r}, which the pin map does not know")
    return problems


# --- drawings --------------------------------------------------------------------------------
def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
            f'width="{width:g}" height="{height:g}" font-family="DejaVu Sans, sans-serif" '
            'font-size="12">',
            f"<title>{title}</title>",
            '<rect width="100%" height="100%" fill="#ffffff"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def front_svg(layout: Layout) -> str:
    """The front elevation, 1 px = 2 mm, from the floor up, with the reach band and the
    camera's field of view at the standing distance."""
    s = 0.5
    panel = layout.panel
    top_mm = max(
        float(layout.raw["site"]["face_high"]) + 100, layout.floor_height(panel["height"]) + 100
    )
    w, h = 760.0, top_mm * s + 40
    ox = 60.0  # the panel's left edge on the drawing

    def y(mm_above_floor: float) -> float:
        return h - 20 - mm_above_floor * s

    body = [
        f'<line x1="0" y1="{y(0):.1f}" x2="{w}" y2="{y(0):.1f}" stroke="#000" stroke-width="2"/>'
    ]
    low, high = (float(layout.raw["checks"][k]) for k in ("reach_low", "reach_high"))
    body.append(
        f'<rect x="0" y="{y(high):.1f}" width="{w}" height="{(high - low) * s:.1f}" '
        'fill="#e6f2e6"/>'
    )
    body.append(
        f'<text x="{w - 8}" y="{y(low) - 6:.1f}" text-anchor="end">reach band '
        f"{low:.0f}-{high:.0f} mm (operable parts)</text>"
    )
    base = float(panel["mount_height"])
    body.append(
        f'<rect x="{ox}" y="{y(base + panel["height"]):.1f}" width="{panel["width"] * s:.1f}" '
        f'height="{panel["height"] * s:.1f}" fill="#d9dde3" stroke="#222" stroke-width="1.5"/>'
    )
    label_ys: list[float] = []
    for o in sorted(layout.openings, key=lambda o: -o.y):
        left, bottom, right, top = o.box()
        if o.diameter:
            body.append(
                f'<circle cx="{ox + o.x * s:.1f}" cy="{y(base + o.y):.1f}" '
                f'r="{o.diameter * s / 2:.1f}" fill="#ffffff" stroke="#222"/>'
            )
        else:
            body.append(
                f'<rect x="{ox + left * s:.1f}" y="{y(base + top):.1f}" '
                f'width="{(right - left) * s:.1f}" height="{(top - bottom) * s:.1f}" '
                'fill="#1f2a36" stroke="#222"/>'
            )
        at = y(base + (o.y if o.diameter else (bottom + top) / 2)) + 4
        while any(abs(at - used) < 15 for used in label_ys):  # openings side by side
            at += 15
        label_ys.append(at)
        where = (
            f"{layout.floor_height(o.y):.0f} mm"
            if o.diameter
            else f"{layout.floor_height(bottom):.0f}-{layout.floor_height(top):.0f} mm"
        )
        body.append(
            f'<text x="{ox + panel["width"] * s + 12:.1f}" y="{at:.1f}">'
            f"{_esc(o.name)}: {where}</text>"
        )
    # the camera's field of view reaching the face band at the standing distance
    site = layout.raw["site"]
    cam = layout.opening("camera")
    cam_h = layout.floor_height(cam.y)
    px = ox + panel["width"] * s + 230
    body.append(
        f'<text x="{px:.1f}" y="{y(float(site["face_high"])) - 8:.1f}" text-anchor="middle">'
        f"faces at {site['standing_distance']} mm</text>"
    )
    for face in (float(site["face_low"]), float(site["face_high"])):
        body.append(
            f'<line x1="{ox + cam.x * s:.1f}" y1="{y(cam_h):.1f}" x2="{px:.1f}" '
            f'y2="{y(face):.1f}" stroke="#c05000" stroke-dasharray="4 3"/>'
        )
        body.append(f'<circle cx="{px:.1f}" cy="{y(face):.1f}" r="5" fill="#c05000"/>')
    tilt, needed = camera_aim(layout)
    body.append(
        f'<text x="{px:.1f}" y="{y(cam_h) + 20:.1f}" text-anchor="middle">camera tilted '
        f"{abs(tilt):.0f} deg {'up' if tilt >= 0 else 'down'}; needs {needed:.0f} deg</text>"
    )
    for mm in range(0, int(top_mm) + 1, 500):
        body.append(f'<text x="4" y="{y(mm) - 3:.1f}">{mm}</text>')
    return _svg(w, h, body, "Kiosk front elevation (generated from enclosure/layout.toml)")


def wiring_svg(pinmap: PinMap) -> str:
    """The 40-pin header seen from above, the kiosk's signals marked, from the pin map."""
    used = {s.header_pin: s for s in pinmap.signals.values()}
    power = {1: "3V3", 17: "3V3", 2: "5V", 4: "5V"}
    ground = {6, 9, 14, 20, 25, 30, 34, 39}
    bcm_at = {pos: bcm for bcm, pos in HEADER_POSITION.items()}
    body: list[str] = []
    top = 40.0
    for pin in range(1, 41):
        row, left = (pin - 1) // 2, pin % 2 == 1
        cx = 300.0 if left else 330.0
        cy = top + row * 22
        signal = used.get(pin)
        fill = (
            "#1b6e2a"
            if signal
            else ("#b00020" if pin in power else "#444" if pin in ground else "#bbb")
        )
        body.append(f'<circle cx="{cx}" cy="{cy}" r="8" fill="{fill}"/>')
        body.append(
            f'<text x="{cx}" y="{cy + 4}" text-anchor="middle" fill="#fff" '
            f'font-size="9">{pin}</text>'
        )
        label = (
            f"{signal.name} (GPIO{signal.bcm}) - {signal.device}"
            if signal
            else power.get(pin, "GND" if pin in ground else f"GPIO{bcm_at.get(pin, '')}")
        )
        weight = ' font-weight="bold"' if signal else ' fill="#666"'
        if left:
            body.append(
                f'<text x="{cx - 14}" y="{cy + 4}" text-anchor="end"{weight}>{_esc(label)}</text>'
            )
        else:
            body.append(f'<text x="{cx + 14}" y="{cy + 4}"{weight}>{_esc(label)}</text>')
    body.append(
        '<text x="315" y="20" text-anchor="middle" font-weight="bold">Raspberry Pi 40-pin '
        "header (pin 1 top left, seen from above)</text>"
    )
    return _svg(640, top + 20 * 22 + 20, body, "Kiosk wiring (generated from pinmap.toml)")


def parts_table(layout: Layout, pinmap: PinMap) -> str:
    pins: dict[str, list[str]] = {}
    for s in pinmap.signals.values():
        pins.setdefault(s.device, []).append(f"{s.name} (GPIO{s.bcm}, pin {s.header_pin})")
    lines = ["| part | qty | item | wired to |", "|---|---|---|---|"]
    for p in layout.parts:
        wired = ", ".join(pins.get(p.get("device", ""), [])) or "—"
        lines.append(f"| {p['part']} | {p['qty']} | {p['item']} | {wired} |")
    return "\n".join(lines) + "\n"


def outputs(layout: Layout, pinmap: PinMap) -> dict[Path, str]:
    """Every generated file and its content (README.md: only between its markers)."""
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- parts:begin -->\n", "<!-- parts:end -->"
    head, _, rest = readme.partition(begin)
    _, _, tail = rest.partition(end)
    return {
        HERE / "front.svg": front_svg(layout),
        HERE / "wiring.svg": wiring_svg(pinmap),
        HERE / "README.md": head + begin + parts_table(layout, pinmap) + end + tail,
    }
