"""HTTPS to the central API for kioskctl: TLS always verified, device requests signed.

May import: the standard library, ``httpx``, ``daemon.*``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from daemon.config import ApiConfig
from daemon.keys import SigningKey
from daemon.reqauth import sign_request


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verification on, against ``ca_bundle`` or the system's CAs; TLS 1.2 or newer."""
    ctx = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client(api: ApiConfig, timeout_s: float | None = None) -> httpx.Client:
    """A blocking client for ``api`` (base URL, CA bundle, client certificate)."""
    ctx = tls_context(api.ca_bundle)
    if api.client_cert is not None and api.client_key is not None:
        ctx.load_cert_chain(str(api.client_cert), str(api.client_key))
    return httpx.Client(
        base_url=api.url.rstrip("/"),
        verify=ctx,
        timeout=httpx.Timeout(timeout_s or api.timeout_s),
        headers={"User-Agent": "kioskctl"},
    )


def signed_get(
    http: httpx.Client, api: ApiConfig, key: SigningKey, device: str, path: str, now: float
) -> httpx.Response:
    """GET ``path`` (below the API's base path) with a KioskSig header made at ``now``."""
    full = httpx.URL(api.url.rstrip("/")).path.rstrip("/") + path
    auth = sign_request(key, device, "GET", full, b"", now)
    return http.get(path, headers={"Authorization": auth})
