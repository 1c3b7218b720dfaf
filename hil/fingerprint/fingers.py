"""Virtual fingers: deterministic synthetic templates, noisy captures and a matcher.

A finger is a (person, finger index) pair; its identity is a vector of ``FEATURES`` feature
bytes derived by hashing the pair, so the central roster and the emulator agree on it without
sharing state. A template or character file is ``MAGIC`` + the features + deterministic filler
up to the model's template size. A capture replaces each feature byte by a random one with a
probability set by the finger's condition; the score of two buffers grows with the share of
feature bytes they agree on. Same finger, good capture: about 200; different fingers: about 0.

Person identifiers here are synthetic test identities, never real case references.

May import: the standard library only.
"""

from __future__ import annotations

import enum
import hashlib
import math
import random
from dataclasses import dataclass
from functools import lru_cache

MAGIC = b"VFP1"
FEATURES = 128
#: The highest score two identical feature vectors get.
MAX_SCORE = 250


class Condition(enum.Enum):
    """How a finger presents on the glass."""

    GOOD = "good"  # clean capture: high score against its own template
    WORN = "worn"  # few ridges left: extraction sometimes fails, scores stay low
    DRY = "dry"  # too dry to image: every extraction fails (image too disorderly)


@dataclass(frozen=True, slots=True)
class ConditionModel:
    noise: float  # probability that a feature byte is replaced by a random one
    extract_fail: float  # probability that Img2Tz fails
    fail_code: int  # the confirmation code it fails with


CONDITIONS: dict[Condition, ConditionModel] = {
    Condition.GOOD: ConditionModel(noise=0.12, extract_fail=0.0, fail_code=0x07),
    Condition.WORN: ConditionModel(noise=0.78, extract_fail=0.5, fail_code=0x07),
    Condition.DRY: ConditionModel(noise=0.40, extract_fail=1.0, fail_code=0x06),
}


@dataclass(frozen=True, slots=True)
class VirtualFinger:
    person: str
    finger: int = 1  # ISO/ANSI finger position 1..10 (1 = right thumb, 2 = right index, ...)
    condition: Condition = Condition.GOOD


@lru_cache(maxsize=1024)
def features(person: str, finger: int) -> bytes:
    """The feature vector of a finger (``FEATURES`` bytes), a pure function of the pair."""
    return hashlib.shake_256(f"vfp1|{person}|{finger}".encode()).digest(FEATURES)


def _filler(feats: bytes, size: int) -> bytes:
    return hashlib.shake_256(b"fill|" + feats).digest(max(0, size))


def pack(feats: bytes, template_size: int) -> bytes:
    """A template or character file holding ``feats``, ``template_size`` bytes long."""
    head = MAGIC + feats
    return head + _filler(feats, template_size - len(head))


def make_template(person: str, finger: int = 1, template_size: int = 1536) -> bytes:
    """The enrolled template of (person, finger), as the central roster would carry it.

    ``template_size`` is the sensor model's template size (1536 for the R503, 512 for the
    R307/AS608; see hil.fingerprint.models).
    """
    return pack(features(person, finger), template_size)


def unpack(buffer: bytes) -> bytes:
    """The feature bytes of a buffer (any bytes: a foreign buffer just scores low)."""
    return buffer[len(MAGIC) : len(MAGIC) + FEATURES].ljust(FEATURES, b"\x00")


def capture(finger: VirtualFinger, rng: random.Random) -> bytes | int:
    """One extraction of a finger: its noisy feature vector, or the failure confirmation code."""
    cm = CONDITIONS[finger.condition]
    if cm.extract_fail and rng.random() < cm.extract_fail:
        return cm.fail_code
    clean = features(finger.person, finger.finger)
    return bytes(rng.randrange(256) if rng.random() < cm.noise else b for b in clean)


def score(a: bytes, b: bytes) -> int:
    """Match score of two buffers, 0..MAX_SCORE."""
    fa, fb = unpack(a), unpack(b)
    agree = sum(x == y for x, y in zip(fa, fb, strict=True)) / FEATURES
    return max(0, round((agree - 0.05) / 0.95 * MAX_SCORE))


def merge(a: bytes, b: bytes) -> bytes:
    """RegModel's feature vector from two captures of one finger.

    With two captures the sensor cannot tell which of two disagreeing bytes is right, so the
    model keeps the first capture's vector; ``b`` only decides whether merging is allowed.
    """
    del b
    return unpack(a)


@lru_cache(maxsize=64)
def render_image(feats: bytes, width: int, height: int) -> bytes:
    """A synthetic ridge pattern (4 bits per pixel, two pixels per byte) for UpImage."""
    cx = width / 2 + (feats[0] - 128) / 16
    cy = height / 2 + (feats[1] - 128) / 16
    freq = 0.35 + feats[2] / 2048
    out = bytearray()
    for y in range(height):
        dy = (y - cy) * 1.2
        row = [
            int(7.5 + 7.5 * math.sin(freq * math.hypot(x - cx, dy) + feats[3 + (x >> 5)] / 40))
            for x in range(width)
        ]
        out += bytes((row[i] << 4) | row[i + 1] for i in range(0, width, 2))
    return bytes(out)


def features_of_image(raw: bytes) -> bytes:
    """Features of an image the host downloaded into the sensor: stable, foreign to any finger."""
    return hashlib.shake_256(b"img|" + raw).digest(FEATURES)
