"""The enclosure as data (enclosure/layout.toml): its checks catch what an installer would
otherwise find on the wall, and its drawings follow the layout and the pin map."""

from __future__ import annotations

import copy
import tomllib
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import enclosure
from drivers.gpio.pinmap import load_pinmap
from enclosure import __main__ as cli

RAW = tomllib.loads(enclosure.LAYOUT.read_text(encoding="utf-8"))
PINMAP = load_pinmap()


def changed(edit: Any) -> list[str]:
    raw = copy.deepcopy(RAW)
    edit(raw)
    return enclosure.check(enclosure.from_dict(raw), PINMAP)


def opening(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in raw["openings"] if o["name"] == name)


def test_the_shipped_layout_passes_and_its_drawings_are_up_to_date() -> None:
    assert enclosure.check(enclosure.load(), PINMAP) == []
    assert cli.main(["--check"]) == 0  # front.svg, wiring.svg, README parts


def test_a_fingerprint_window_out_of_reach_is_refused() -> None:
    problems = changed(lambda r: opening(r, "fingerprint window").update(y=520))
    assert any("fingerprint window spans 1220-1220 mm" in p and "750-1200" in p for p in problems)
    # hanging the whole panel higher takes the screen out of reach too
    problems = changed(lambda r: r["panel"].update(mount_height=900))
    assert any(p.startswith("screen spans 1150-1350 mm") for p in problems)


def test_a_headphone_socket_is_on_the_panel_and_within_reach() -> None:
    """Spoken screens in private (requirement 22): the socket is operable, so the reach band
    holds it; its switched contacts silence the loudspeaker (the parts list says so)."""
    layout = enclosure.from_dict(RAW)
    socket = next(o for o in layout.openings if o.kind == "socket")
    assert 750 <= layout.floor_height(socket.y) <= 1200
    parts = {p["part"]: p["item"] for p in layout.parts}
    assert "silence the loudspeaker" in parts["headphone socket"]
    problems = changed(lambda r: opening(r, "headphone socket").update(y=20))
    assert any(p.startswith("headphone socket spans 720-720 mm") for p in problems)


def test_the_standard_camera_lens_cannot_see_every_face() -> None:
    def standard_lens(raw: dict[str, Any]) -> None:
        next(p for p in raw["parts"] if p["part"] == "camera")["vertical_fov"] = 41

    [problem] = changed(standard_lens)
    assert "must see 59 degrees" in problem and "sees 41" in problem and "wider lens" in problem
    tilt, needed = enclosure.camera_aim(enclosure.load())
    assert 15 < tilt < 17 and 58 < needed < 60  # aimed up, between the two faces


def test_parts_and_pin_map_are_kept_in_step() -> None:
    def drop_buzzer(raw: dict[str, Any]) -> None:
        raw["parts"] = [p for p in raw["parts"] if p["part"] != "buzzer"]

    problems = changed(drop_buzzer)
    assert "the pin map wires 'buzzer', which is not in the parts list" in problems
    assert "buzzer grille is for 'buzzer', which is not in the parts list" in problems

    def unknown_device(raw: dict[str, Any]) -> None:
        raw["parts"].append({"part": "siren", "device": "siren", "item": "x", "qty": 1})

    assert changed(unknown_device) == [
        "the parts list wires 'siren', which the pin map does not know"
    ]


def test_openings_must_fit_and_not_overlap() -> None:
    problems = changed(lambda r: opening(r, "status light").update(x=214))
    assert "fingerprint window and status light overlap" in problems
    problems = changed(lambda r: opening(r, "camera").update(y=560))
    assert "camera does not fit on the 420 x 560 panel" in problems


def test_the_drawings_show_what_they_claim() -> None:
    wiring = enclosure.wiring_svg(PINMAP)
    ET.fromstring(wiring)  # well-formed
    for s in PINMAP.signals.values():
        assert f"{s.name} (GPIO{s.bcm}) - {s.device}" in wiring
        assert f">{s.header_pin}</text>" in wiring
    front = enclosure.front_svg(enclosure.load())
    ET.fromstring(front)
    assert "screen: 950-1150 mm" in front and "fingerprint window: 840 mm" in front
    assert "reach band 750-1200 mm" in front and "camera tilted 16 deg up" in front
    table = enclosure.parts_table(enclosure.load(), PINMAP)
    assert "| fingerprint | 1 |" in table and "uart_tx (GPIO14, pin 8)" in table


@pytest.mark.parametrize("name", ["front.svg", "wiring.svg"])
def test_a_drawing_edited_by_hand_is_reported_stale(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for f in ("layout.toml", "README.md", "front.svg", "wiring.svg"):
        (tmp_path / f).write_bytes((enclosure.HERE / f).read_bytes())
    monkeypatch.setattr(enclosure, "HERE", tmp_path)
    monkeypatch.setattr(
        enclosure.__main__, "load", lambda: enclosure.load(tmp_path / "layout.toml")
    )
    (tmp_path / name).write_text((tmp_path / name).read_text() + "<!-- edited by hand -->\n")
    assert cli.main(["--check"]) == 1
    assert cli.main([]) == 0  # regenerated
    assert cli.main(["--check"]) == 0
