"""HTTPS to the central API for kioskctl: TLS always verified, device requests signed, and
every answer read as the sync client reads it (daemon/sync.py): within a deadline
(``DEADLINE_FACTOR`` times the client's timeout, which bounds each wait only) and up to
``MAX_ANSWER_BYTES``, so an API that trickles or floods cannot hang the engineer's command.

May import: the standard library, ``httpx``, ``daemon.*``.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable
from daemon.keys import SigningKey
from daemon.reqauth import sign_request
from daemon.sync import DEADLINE_FACTOR, FRAMING_HEADERS, MAX_ANSWER_BYTES, loads_answer


class SlowAnswer(ApiUnreachable):
    """The API did not finish its answer within the deadline. ``what`` says so, for a caller
    to add what to do."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class BadAnswer(ApiProtocolError):
    """The API answered something kioskctl cannot use (too long, wrongly encoded, not a JSON
    object). ``what`` says which, for a caller to add what to do."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


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
    http: httpx.Client,
    api: ApiConfig,
    key: SigningKey,
    device: str,
    path: str,
    now: float,
    *,
    cut_short: bool = False,
) -> httpx.Response:
    """GET ``path`` (below the API's base path) with a KioskSig header made at ``now``; read
    as :func:`request` reads it."""
    full = httpx.URL(api.url.rstrip("/")).path.rstrip("/") + path
    auth = sign_request(key, device, "GET", full, b"", now)
    return request(http, "GET", path, cut_short=cut_short, headers={"Authorization": auth})


def request(
    http: httpx.Client, method: str, path: str, *, cut_short: bool = False, **kw: Any
) -> httpx.Response:
    """Send a request and read its answer (decoded) within the deadline and up to
    ``MAX_ANSWER_BYTES``; returned whole in memory. A longer 2xx answer raises BadAnswer
    unless ``cut_short`` (only its status counts); a longer error answer is always cut short.
    Raises SlowAnswer, BadAnswer, or httpx.HTTPError for the network (connect, TLS, a single
    wait too long)."""
    wait = http.timeout.read or 10.0
    deadline = wait * DEADLINE_FACTOR
    began = time.monotonic()
    data = bytearray()
    try:
        with http.stream(method, path, **kw) as streamed:
            for chunk in streamed.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    if streamed.is_success and not cut_short:
                        raise BadAnswer(
                            f"sent an answer larger than {MAX_ANSWER_BYTES // 1024} KiB, more "
                            "than the API ever sends"
                        )
                    del data[MAX_ANSWER_BYTES:]
                    break
                if time.monotonic() - began > deadline:
                    raise SlowAnswer(f"did not finish answering within {deadline:.1f} s")
    except httpx.DecodingError as exc:
        raise BadAnswer(
            "sent an answer that could not be decoded (its Content-Encoding is wrong)"
        ) from exc
    keep = [(k, v) for k, v in streamed.headers.raw if k.lower().decode() not in FRAMING_HEADERS]
    return httpx.Response(
        streamed.status_code, headers=keep, content=bytes(data), request=streamed.request
    )


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer as a JSON object. Raises BadAnswer for anything else: not JSON (HTML from a
    proxy or login page, JSON Python's parser refuses) or JSON of another shape."""
    try:
        answer = loads_answer(response.content)
    except ValueError as exc:
        kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0]
        raise BadAnswer(
            f"answered {response.status_code} with something that is not JSON ({kind})"
        ) from exc
    if not isinstance(answer, dict):
        raise BadAnswer(f"answered {response.status_code} with JSON that is not a JSON object")
    return answer
