"""A slip as a 1-bit image the width of the paper: the printer prints it as raster, so any
letter the font has prints, Welsh ŵ and ŷ included (the printers' own code pages lack them).

May import: the standard library, Pillow, ``drivers.printer.interface``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from drivers.printer.interface import Receipt

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
#: style -> (font file, size in dots at 203 dpi)
STYLES = {
    "title": ("DejaVuSans-Bold.ttf", 30),
    "big": ("DejaVuSans-Bold.ttf", 40),
    "text": ("DejaVuSans.ttf", 24),
    "small": ("DejaVuSans.ttf", 18),
}
MARGIN = 8
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=8)
def _font(style: str) -> Font:
    name, size = STYLES.get(style, STYLES["text"])
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    """Lines no wider than ``width`` dots: at spaces, and inside a word only when the word
    alone is wider (a web address on a 58 mm slip), so nothing is cut off the paper."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width:
                line = trial
                continue
            if line:
                lines.append(line)
            line = word
            while len(line) > 1 and draw.textlength(line, font=font) > width:
                cut = len(line) - 1
                while cut > 1 and draw.textlength(line[:cut], font=font) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def render(receipt: Receipt, width_dots: int) -> Image.Image:
    """Black text on white, mode "1", ``width_dots`` wide, as tall as the slip needs."""
    scratch = ImageDraw.Draw(Image.new("1", (1, 1)))
    rows: list[tuple[str, Font, int]] = []
    for style, text in receipt.lines:
        font = _font(style)
        size = STYLES.get(style, STYLES["text"])[1]
        for line in _wrap(scratch, text, font, width_dots - 2 * MARGIN):
            rows.append((line, font, int(size * 1.35)))
    height = sum(h for _l, _f, h in rows) + 2 * MARGIN
    image = Image.new("1", (width_dots, height), 1)
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for line, font, h in rows:
        draw.text((MARGIN, y), line, font=font, fill=0)
        y += h
    return image
