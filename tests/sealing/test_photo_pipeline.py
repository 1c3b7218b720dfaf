"""Camera to sealed blob to the reviewer's open: the path a check-in photo takes."""

from __future__ import annotations

import io

from PIL import Image

from daemon.sealing import (
    PHOTO_INFO,
    PhotoSealer,
    generate_keypair,
    open_sealed,
    public_to_b64,
    sealed_sha256,
)
from drivers.camera import CameraSettings, Shot, camera_sim, open_camera


def test_a_flagged_photo_survives_sealing_and_opens_only_for_the_reviewer() -> None:
    api_private, api_public = generate_keypair()  # as hil/pki.py keeps it: raw 32 bytes
    sealer = PhotoSealer.from_config(public_to_b64(api_public))  # as [api] seal_public_key
    with open_camera(CameraSettings(backend="simulated")) as cam:
        camera_sim(cam).script([Shot.BLURRY, Shot.BLURRY])
        photo = cam.capture_still()
    assert photo.flagged
    sealed = sealer.seal_photo(photo.jpeg)
    assert sealed.sha256 == sealed_sha256(sealed.blob)
    assert b"JFIF" not in sealed.blob
    opened = open_sealed(sealed.blob, api_private, expect_info=PHOTO_INFO)
    assert opened == photo.jpeg
    assert Image.open(io.BytesIO(opened)).size == (1280, 960)
