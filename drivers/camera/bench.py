"""Per-photo device cost: simulated capture (synthetic frame, quality gate, JPEG encoding)
plus HPKE sealing, so the check-in budget (finger lifted -> record durable, p99 <= 50 ms)
can account for it. ``figures()`` returns ``hil.bench`` figures; ``python -m
drivers.camera.bench`` prints them.

May import: the standard library, ``daemon.sealing``, ``drivers.camera``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from daemon.sealing import PhotoSealer, generate_keypair
from drivers.camera import CameraSettings, open_camera


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    n: int = 200, settings: CameraSettings | None = None, warmup: int = 5
) -> dict[str, float]:
    """Time ``n`` photos; returns milliseconds: ``capture_p50/p99`` (grab + gate + JPEG),
    ``seal_p50/p99``, ``total_p50/p99``, and ``jpeg_kb`` (mean size)."""
    settings = settings or CameraSettings(backend="simulated")
    sealer = PhotoSealer(generate_keypair()[1])
    capture, seal, total, sizes = [], [], [], []
    with open_camera(settings) as cam:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            photo = cam.capture_still()
            t1 = time.perf_counter()
            sealer.seal_photo(photo.jpeg)
            t2 = time.perf_counter()
            if i >= warmup:
                capture.append((t1 - t0) * 1e3)
                seal.append((t2 - t1) * 1e3)
                total.append((t2 - t0) * 1e3)
                sizes.append(len(photo.jpeg) / 1024)
    return {
        "capture_p50": _pct(capture, 0.5),
        "capture_p99": _pct(capture, 0.99),
        "seal_p50": _pct(seal, 0.5),
        "seal_p99": _pct(seal, 0.99),
        "total_p50": _pct(total, 0.5),
        "total_p99": _pct(total, 0.99),
        "jpeg_kb": statistics.fmean(sizes),
    }


def figures(n: int = 200) -> dict[str, dict[str, Any]]:
    """``hil.bench`` figures: ``photo.*`` in milliseconds (1280x960, JPEG quality 85)."""
    m = measure(n)
    note = "simulated camera at 1280x960: synthetic frame + quality gate + JPEG, then HPKE seal"
    return {
        "photo.capture_p99_ms": {"value": round(m["capture_p99"], 2), "unit": "ms", "note": note},
        "photo.seal_p99_ms": {"value": round(m["seal_p99"], 3), "unit": "ms"},
        "photo.total_p50_ms": {"value": round(m["total_p50"], 2), "unit": "ms"},
        "photo.total_p99_ms": {"value": round(m["total_p99"], 2), "unit": "ms"},
        "photo.jpeg_kb": {"value": round(m["jpeg_kb"], 1), "unit": "kB"},
    }


if __name__ == "__main__":
    for name, fig in figures().items():
        print(f"{name:24} {fig['value']:>10} {fig['unit']}")
