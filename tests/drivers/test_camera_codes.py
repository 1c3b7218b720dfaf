"""QR codes read from camera frames: real QR images (zxing-cpp's writer) in synthetic scenes,
read by the real decoder through the camera's preview path."""

from __future__ import annotations

import pytest
from PIL import Image, ImageFilter

from drivers.camera import (
    CameraNotFound,
    CameraSettings,
    GatedCamera,
    Shot,
    camera_sim,
    open_camera,
)
from drivers.camera.codes import MAX_TEXT, qr_image, read_qr
from drivers.camera.synthetic import SyntheticCamera


def test_a_letter_held_up_is_read_and_nothing_is_read_without_one(camera: GatedCamera) -> None:
    sim = camera_sim(camera)
    assert camera.read_code() is None
    sim.hold_up_letter("CR-900101")
    assert camera.read_code() == "CR-900101"
    sim.put_letter_away()
    assert camera.read_code() is None


def test_looking_for_codes_takes_no_evidence_stills_and_skips_scripted_failures(
    camera: GatedCamera,
) -> None:
    sim = camera_sim(camera)
    sim.script([Shot.DARK])
    sim.hold_up_letter("CR-900101")
    for _ in range(3):
        assert camera.read_code() == "CR-900101"
    assert sim.frames_taken == 0 and sim.previews_taken == 3
    photo = camera.capture_still()  # the scripted dark shot is still there for the photo
    assert photo.attempts == 2 and sim.frames_taken == 2


def test_an_unplugged_camera_reads_no_codes_until_plugged_back(camera: GatedCamera) -> None:
    sim = camera_sim(camera)
    sim.hold_up_letter("CR-900101")
    sim.unplug()
    with pytest.raises(CameraNotFound):
        camera.read_code()
    sim.plug_in()
    assert camera.read_code() == "CR-900101"


def test_small_preview_width_still_reads_a_letter() -> None:
    with open_camera(CameraSettings(backend="simulated", qr_width=320)) as cam:
        camera_sim(cam).hold_up_letter("CR-123456")
        assert cam.read_code() == "CR-123456"


def _scene_with(text: str) -> Image.Image:
    source = SyntheticCamera(1280, 960)
    source.open()
    source.hold_up_letter(text)
    return source.grab_preview(1.0)


def test_a_dim_frame_is_read_and_a_smeared_one_is_not_an_error() -> None:
    frame = _scene_with("CR-654321")
    assert read_qr(frame.point(lambda v: v // 3)) == "CR-654321"  # a dark corner of the lobby
    smeared = frame.filter(ImageFilter.BoxBlur(12))
    assert read_qr(smeared) is None  # out of focus: nothing read, no exception


def test_long_texts_are_cut_and_non_reference_texts_come_back_as_they_are() -> None:
    long = "https://example.invalid/" + "a" * 300
    assert read_qr(qr_image(long, module_px=4)) == long[:MAX_TEXT]
    assert read_qr(_scene_with("WIFI:S:lobby;;")) == "WIFI:S:lobby;;"


@pytest.mark.parametrize(
    ("field", "value"),
    [("qr_interval_s", 0.0), ("qr_interval_s", 60.0), ("qr_width", 100), ("qr_width", 9999)],
)
def test_settings_refuse_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        CameraSettings(backend="simulated", **{field: value})  # type: ignore[arg-type]
