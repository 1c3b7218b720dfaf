"""The cheap photo-quality gate: exposure (mean grey level) and sharpness (variance of the
Laplacian) on a downscaled grey copy. About a millisecond at 1280x960 on a developer machine.

May import: the standard library, Pillow, ``drivers.camera.interface``.
"""

from __future__ import annotations

from PIL import Image, ImageFilter, ImageStat

from drivers.camera.interface import CameraSettings, QualityVerdict

_LAPLACIAN = ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), scale=1, offset=128)


def assess(frame: Image.Image, settings: CameraSettings) -> QualityVerdict:
    """Judge one frame. Pure: no I/O, no state; safe from any thread."""
    factor = max(1, frame.width // settings.gate_width)
    small = frame.reduce(factor) if factor > 1 else frame
    grey = small.convert("L")
    mean = ImageStat.Stat(grey).mean[0]
    # crop the 1-pixel border the kernel cannot fill
    lap = grey.filter(_LAPLACIAN).crop((1, 1, grey.width - 1, grey.height - 1))
    sharpness = ImageStat.Stat(lap).var[0]
    problems: list[str] = []
    if mean < settings.min_luma:
        problems.append("too_dark")
    elif mean > settings.max_luma:
        problems.append("too_bright")
    if sharpness < settings.min_sharpness:
        problems.append("blurry")
    return QualityVerdict(not problems, round(mean, 1), round(sharpness, 1), tuple(problems))
