"""QR codes in camera frames: the case reference printed on an appointment letter.

:func:`read_qr` takes a frame, makes it grey and at most ``max_width`` pixels wide (a letter
held up to the camera fills a good part of the frame, so full resolution only costs time),
and asks zxing-cpp for QR codes. zxing-cpp is a maintained C++ decoder with wheels for the
Pi's aarch64 and for x86_64; writing a QR decoder ourselves would be worse at skewed, badly
lit and partly covered codes, which is what people hold up.

The frame is only looked at, never kept; the text is returned to the caller and never logged
(it is a case reference).

May import: the standard library, Pillow, zxing-cpp.
"""

from __future__ import annotations

from typing import Any, cast

import zxingcpp
from PIL import Image

#: Longer texts are not case references; they are still returned, cut, so the screen can say
#: "this code is not your case reference" (a URL on a leaflet, say).
MAX_TEXT = 128
_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def read_qr(frame: Image.Image, *, max_width: int = 640) -> str | None:
    """The text of the first readable QR code in ``frame``, or None when there is none."""
    grey = frame if frame.mode == "L" else frame.convert("L")
    if grey.width > max_width:
        grey = grey.resize(
            (max_width, grey.height * max_width // grey.width), Image.Resampling.BILINEAR
        )
    for code in zxingcpp.read_barcodes(grey, formats=_QR):
        if code.valid and code.text:
            return code.text[:MAX_TEXT]
    return None


def qr_image(text: str, *, module_px: int = 6) -> Image.Image:
    """A QR code of ``text`` as a grey image with its quiet zone (the simulated camera's
    letters; tests)."""
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode)
    image = zxingcpp.write_barcode_to_image(code, scale=module_px)
    height, width = image.shape
    return Image.frombytes("L", (width, height), bytes(memoryview(cast(Any, image))))
