"""Sensor models the emulator can be: sizes, capacity and the datasheet timing model.

Times are seconds of sensor work per operation, taken as the spec sheets' upper bounds
(../shared/reference/fingerprint-protocol.md §7.1). Figures the sheets do not give are our own
estimates and marked so. UART time is not here: the emulator adds ``bytes × 10 / baud``.

May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SensorModel:
    name: str
    template_size: int  # bytes moved by UpChar/DownChar
    image_width: int
    image_height: int
    capacity: int  # flash library slots
    system_id: int  # word 1 of ReadSysPara
    has_led: bool  # R503 ring LED (AuraLedConfig 0x35) and SoftReset 0x3D
    capture_s: float  # GenImg
    extract_s: float  # Img2Tz
    match_s: float  # Match (1:1)
    search_per_template_s: float  # Search, per stored template scanned
    merge_s: float  # RegModel (estimate: no sheet gives it)
    flash_s: float  # Store / Delete / Empty / LoadChar (estimate)
    command_s: float = 0.001  # any other command (estimate)
    startup_s: float = 0.05  # power-on until the 0x55 byte

    @property
    def image_bytes(self) -> int:
        """4 bits per pixel over UART, two pixels per byte."""
        return self.image_width * self.image_height // 2


MODELS: dict[str, SensorModel] = {
    # Grow R503: capacitive, ring LED, touch-wake output. Capture < 0.2 s, feature extraction
    # < 0.5 s, search < 10 ms per template, 1536-byte template, 192x192 image, 200 slots.
    "R503": SensorModel(
        name="R503",
        template_size=1536,
        image_width=192,
        image_height=192,
        capacity=200,
        system_id=0,
        has_led=True,
        capture_s=0.2,
        extract_s=0.5,
        match_s=0.1,
        search_per_template_s=0.010,
        merge_s=0.1,
        flash_s=0.05,
    ),
    # Grow R307 (optical, ZFM-60 class): capture < 0.3 s, verification about 0.1 s, search
    # < 1 s over 1000 templates, 512-byte template, 256x288 image.
    "R307": SensorModel(
        name="R307",
        template_size=512,
        image_width=256,
        image_height=288,
        capacity=1000,
        system_id=9,
        has_led=False,
        capture_s=0.3,
        extract_s=0.5,
        match_s=0.1,
        search_per_template_s=0.001,
        merge_s=0.1,
        flash_s=0.05,
        startup_s=0.2,
    ),
    # AS608 / ZFM-20 boards: capture < 1.0 s, 162 slots, search < 1 s over 500 templates.
    "AS608": SensorModel(
        name="AS608",
        template_size=512,
        image_width=256,
        image_height=288,
        capacity=162,
        system_id=9,
        has_led=False,
        capture_s=1.0,
        extract_s=0.5,
        match_s=0.1,
        search_per_template_s=0.002,
        merge_s=0.1,
        flash_s=0.05,
        startup_s=0.2,
    ),
}


def model(name: str) -> SensorModel:
    """The model called ``name`` (case-insensitive). Raises ValueError naming the known ones."""
    try:
        return MODELS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown sensor model {name!r}; known: {', '.join(MODELS)}") from None
