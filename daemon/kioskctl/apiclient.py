"""HTTPS to the central API for kioskctl: TLS always verified, device requests signed, and
every answer read as the sync client reads it (:func:`daemon.sync.read_answer`): the whole
exchange, connecting and the headers included, within a deadline (``DEADLINE_FACTOR`` times
the client's timeout, which bounds each wait only) and up to ``MAX_ANSWER_BYTES``, so an API
or a proxy that trickles or floods cannot hang the engineer's command.

Why asyncio in a command-line tool: httpx's blocking client has no deadline for a whole
request, only per wait, so a server that sends its headers a byte at a time holds it for
hours; ``asyncio.timeout`` around the async client bounds everything, as in kiosk-sync.

May import: the standard library, ``httpx``, ``daemon.*``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import httpx

from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable
from daemon.keys import SigningKey
from daemon.reqauth import sign_request
from daemon.sync import (
    DEADLINE_FACTOR,
    MAX_ANSWER_BYTES,
    TooLong,
    loads_answer,
    read_answer,
    ssl_context,
)

T = TypeVar("T")


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


class Http:
    """One command's connection to the central API (base URL, CA bundle, client certificate):
    an async httpx client on an event loop of the command's own, used from blocking code
    through :func:`request`. A context manager; closing it closes both."""

    def __init__(
        self,
        api: ApiConfig,
        timeout_s: float | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s or api.timeout_s
        self._runner = asyncio.Runner()
        self.client = httpx.AsyncClient(
            base_url=api.url.rstrip("/"),
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": "kioskctl"},
            transport=transport or httpx.AsyncHTTPTransport(verify=ssl_context(api)),
        )
        # Called from async code (a test, or a program embedding kioskctl), this thread's loop
        # is busy: the command's own loop then runs on a thread of its own.
        try:
            asyncio.get_running_loop()
            self._thread: ThreadPoolExecutor | None = ThreadPoolExecutor(1, "kioskctl-http")
        except RuntimeError:
            self._thread = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this connection's event loop and return what it returns."""
        if self._thread is None:
            return self._runner.run(coro)
        return self._thread.submit(self._runner.run, coro).result()

    def close(self) -> None:
        try:
            self.run(self.client.aclose())
        finally:
            if self._thread is None:
                self._runner.close()
            else:
                self._thread.submit(self._runner.close).result()
                self._thread.shutdown()

    def __enter__(self) -> Http:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def client(api: ApiConfig, timeout_s: float | None = None) -> Http:
    """A connection to ``api`` for one command (see :class:`Http`)."""
    return Http(api, timeout_s)


def signed_get(
    http: Http,
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
    http: Http, method: str, path: str, *, cut_short: bool = False, **kw: Any
) -> httpx.Response:
    """Send a request and read its answer (decoded) within the deadline and up to
    ``MAX_ANSWER_BYTES``; returned whole in memory. A longer 2xx answer raises BadAnswer
    unless ``cut_short`` (only its status counts); a longer error answer is always cut short.
    Raises SlowAnswer, BadAnswer, or httpx.HTTPError for the network (connect, TLS, a single
    wait too long)."""
    deadline = http.timeout_s * DEADLINE_FACTOR
    reading = read_answer(
        http.client, method, path, deadline=deadline, limit=MAX_ANSWER_BYTES,
        cut_short=cut_short, **kw,
    )  # fmt: skip
    try:
        response = http.run(reading)
    except TimeoutError as exc:
        raise SlowAnswer(f"did not finish answering within {deadline:.1f} s") from exc
    except TooLong as exc:
        raise BadAnswer(
            f"sent an answer larger than {MAX_ANSWER_BYTES // 1024} KiB, more than the API "
            "ever sends"
        ) from exc
    except httpx.DecodingError as exc:
        raise BadAnswer(
            "sent an answer that could not be decoded (its Content-Encoding is wrong)"
        ) from exc
    return response


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
