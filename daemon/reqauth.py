"""Signed requests: how a device proves who it is on calls other than record uploads.

Header (docs/api.md)::

    Authorization: KioskSig device="kiosk-0001", ts="1763888000", sig="<base64url>"

``sig`` is the device key's JWS-style signature over
``METHOD \\n PATH \\n ts \\n base64url(SHA-256(body))``. Works behind a TLS-terminating proxy,
unlike identifying the device by its client certificate alone.

May import: the standard library, ``daemon.keys``, ``daemon.records``, ``daemon.errors``.
"""

from __future__ import annotations

import hashlib
import re

from daemon.errors import KioskError
from daemon.keys import PublicKey, SigningKey, verify_signature
from daemon.records import b64url, b64url_decode

SCHEME = "KioskSig"
MAX_SKEW_S = 300
_HEADER = re.compile(
    r'^KioskSig device="(?P<device>[A-Za-z0-9._-]{1,64})", ts="(?P<ts>\d{1,12})", '
    r'sig="(?P<sig>[A-Za-z0-9_-]+)"$'
)


class RequestAuthError(KioskError):
    reason = "unauthorised"


def _message(method: str, path: str, ts: int, body: bytes) -> bytes:
    digest = b64url(hashlib.sha256(body).digest())
    return f"{method.upper()}\n{path}\n{ts}\n{digest}".encode()


def sign_request(
    key: SigningKey, device: str, method: str, path: str, body: bytes, now: float
) -> str:
    """The ``Authorization`` header value for one request made at Unix time ``now``."""
    ts = int(now)
    sig = b64url(key.sign(_message(method, path, ts, body)))
    return f'{SCHEME} device="{device}", ts="{ts}", sig="{sig}"'


def parse_device(header: str | None) -> str:
    """The device a header claims to be (not yet verified)."""
    m = _HEADER.match(header or "")
    if not m:
        raise RequestAuthError("missing or malformed KioskSig Authorization header")
    return m["device"]


def verify_request(
    header: str | None,
    method: str,
    path: str,
    body: bytes,
    public_key: PublicKey,
    alg: str,
    now: float,
    max_skew_s: int = MAX_SKEW_S,
) -> str:
    """Check a signed request; return the device id. Raises :class:`RequestAuthError` with
    reason ``unauthorised`` or ``clock_skew``."""
    m = _HEADER.match(header or "")
    if not m:
        raise RequestAuthError("missing or malformed KioskSig Authorization header")
    ts = int(m["ts"])
    if abs(now - ts) > max_skew_s:
        raise RequestAuthError(
            "request time is more than 5 minutes from the server's clock; fix the device clock",
            reason="clock_skew",
        )
    try:
        sig = b64url_decode(m["sig"])
    except ValueError as exc:
        raise RequestAuthError("signature is not base64url") from exc
    if not verify_signature(public_key, alg, _message(method, path, ts, body), sig):
        raise RequestAuthError("request signature does not verify")
    return m["device"]
