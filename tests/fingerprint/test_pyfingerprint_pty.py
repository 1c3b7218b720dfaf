"""PyPI pyfingerprint 1.5, unmodified, against the emulator on a pty: its API call by call."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from pyfingerprint.pyfingerprint import PyFingerprint

from hil.fingerprint import Condition, SensorEmulator, VirtualFinger, make_template


@pytest.fixture
def lib(pty_emulator: tuple[SensorEmulator, str]) -> PyFingerprint:
    _, port = pty_emulator
    fp = PyFingerprint(port, 57600, 0xFFFFFFFF, 0)
    assert fp.verifyPassword() is True
    return fp


def test_system_parameters_and_getters(lib: PyFingerprint) -> None:
    assert lib.getSystemParameters() == (0b0100, 9, 1000, 3, 0xFFFFFFFF, 2, 6)
    assert lib.getStorageCapacity() == 1000
    assert lib.getSecurityLevel() == 3
    assert lib.getMaxPacketSize() == 128
    assert lib.getBaudRate() == 57600


def test_set_system_parameters(
    lib: PyFingerprint, pty_emulator: tuple[SensorEmulator, str]
) -> None:
    lib.setSecurityLevel(5)
    assert lib.getSecurityLevel() == 5
    lib.setMaxPacketSize(64)
    assert lib.getMaxPacketSize() == 64
    lib.setBaudRate(115200)  # acknowledged at 57600, then the sensor switches
    assert pty_emulator[0].baud == 115200


def test_capture_convert_merge_store_search_delete(
    lib: PyFingerprint, pty_emulator: tuple[SensorEmulator, str]
) -> None:
    emu, _ = pty_emulator
    assert lib.readImage() is False  # no finger
    emu.present_finger(VirtualFinger("SYN-0100", 2))
    assert lib.readImage() is True
    assert lib.convertImage(0x01) is True
    assert lib.readImage() is True
    assert lib.convertImage(0x02) is True
    assert lib.compareCharacteristics() > 100
    assert lib.createTemplate() is True
    assert lib.storeTemplate() == 0  # first free slot
    assert lib.storeTemplate(5, 0x02) == 5
    assert lib.getTemplateCount() == 2
    assert lib.getTemplateIndex(0)[:6] == [True, False, False, False, False, True]
    assert lib.readImage() is True
    lib.convertImage(0x01)
    position, score = lib.searchTemplate()
    assert position in (0, 5) and score > 100
    emu.present_finger(VirtualFinger("SYN-0101", 2))
    lib.readImage()
    lib.convertImage(0x01)
    assert lib.searchTemplate() == (-1, -1)
    lib.loadTemplate(5, 0x02)
    assert lib.compareCharacteristics() == 0  # different finger: the library reports 0
    with pytest.raises(Exception, match="The template could not be read"):
        lib.loadTemplate(7, 0x01)
    assert lib.deleteTemplate(5) is True
    assert lib.getTemplateCount() == 1
    assert lib.clearDatabase() is True
    assert lib.getTemplateCount() == 0


def test_poor_captures_raise_the_library_errors(
    lib: PyFingerprint, pty_emulator: tuple[SensorEmulator, str]
) -> None:
    emu, _ = pty_emulator
    with pytest.raises(Exception, match="The image is invalid"):
        lib.convertImage(0x01)  # nothing captured since power-on
    emu.present_finger("SYN-0102", 1, condition=Condition.DRY)
    assert lib.readImage() is True
    with pytest.raises(Exception, match="too messy"):
        lib.convertImage(0x01)


def test_characteristics_upload_and_download(lib: PyFingerprint) -> None:
    template = list(make_template("SYN-0103", 3, 512))
    assert lib.uploadCharacteristics(0x02, template) is True  # includes its own read-back
    assert lib.downloadCharacteristics(0x02) == template
    with pytest.raises(Exception, match="Could not download characteristics"):
        lib.downloadCharacteristics(0x01)  # empty buffer


def test_image_download(
    lib: PyFingerprint, pty_emulator: tuple[SensorEmulator, str], tmp_path: Path
) -> None:
    emu, _ = pty_emulator
    with pytest.raises(Exception, match="Could not download image"):
        lib.downloadImage(str(tmp_path / "none.bmp"))
    emu.present_finger(VirtualFinger("SYN-0104", 1))
    assert lib.readImage() is True
    lib.downloadImage(str(tmp_path / "finger.bmp"))
    with Image.open(tmp_path / "finger.bmp") as img:
        assert img.size == (256, 288)
        extrema = img.convert("L").getextrema()
    lo, hi = int(extrema[0]), int(extrema[1])  # type: ignore[arg-type]
    assert hi - lo > 150  # a ridge pattern, not a blank frame


def test_random_numbers_differ(lib: PyFingerprint) -> None:
    numbers = {lib.generateRandomNumber() for _ in range(5)}
    assert len(numbers) == 5
    assert all(0 <= n < 2**32 for n in numbers)


def test_password_and_address(pty_emulator: tuple[SensorEmulator, str]) -> None:
    emu, port = pty_emulator
    lib = PyFingerprint(port, 57600, 0xFFFFFFFF, 0)
    assert lib.verifyPassword() is True
    assert lib.setPassword(0x1234) is True
    assert lib.setAddress(0xC0FFEE01) is True  # the library now talks to the new address
    assert lib.getTemplateCount() == 0
    emu.core.reset()  # power cycle: the password is in flash, so it is asked again
    with pytest.raises(Exception, match="Unknown error 0x21"):
        lib.getTemplateCount()  # 0x21: verify the password first
    wrong = PyFingerprint(port, 57600, 0xC0FFEE01, 0x9999)
    assert wrong.verifyPassword() is False
    right = PyFingerprint(port, 57600, 0xC0FFEE01, 0x1234)
    assert right.verifyPassword() is True
    assert right.getTemplateCount() == 0
