"""The sync client: records and sealed photos up, the roster down, heartbeats.

Async ``httpx`` client with TLS verification always on (a configured CA bundle or the system's)
and an optional client certificate (mTLS). Records go up in batches with an
``Idempotency-Key`` derived from the batch's content, so a resend after a crash or a lost
answer is recognised by the server; the answer is per record (accepted / duplicate / rejected
with a reason). Accepted and duplicate records are retired; rejected ones are parked with the
reason for an engineer, never deleted and never retried forever. Anything else — a dead
network, a TLS failure, a 5xx, a refused signature (401), an answer that does not follow the
contract — retires nothing and backs off exponentially with full jitter and a cap, honouring
``Retry-After``. A new record wakes the loop at once. Every answer is read within a deadline
(:data:`DEADLINE_FACTOR` times ``timeout_s``, which bounds each wait) and up to a size
(:data:`MAX_ANSWER_BYTES`, a roster :data:`MAX_ROSTER_BYTES`), so an API that trickles or
floods cannot hang the one loop or fill the Pi's memory. A record is retired only on an
answer that stands behind it (its own index, seq and id, within the answer's ``last_seq`` and
outside its ``gaps``); records the API acknowledged earlier and now reports missing are sent
again from the kiosk's copy, each once (:meth:`SyncClient.resend_missing`).

After a key rotation (``kioskctl provision --force``) the API refuses requests signed by the
new key (401) until it has accepted the ``key_rotation`` record, which only a records upload
can bring it (records authenticate themselves). So a photo refused with 401 does not hold up
its batch: it stays on disk, marked not uploaded, and goes up after the records
(:meth:`SyncClient.upload_deferred_blobs`, retried with backoff until the API takes it).

A kiosk whose clock is wrong and unsynchronised (NTP blocked, a Pi with no clock battery
after a power cut) would have every signed request refused as ``clock_skew`` (more than
5 minutes from the API's clock), records included, until someone fixed time sync. So on that
answer the client reads the API's ``Date`` header, signs its requests with the API's time
from then on, and retries once; while the kiosk's own clock stays unsynchronised, it keeps
doing so. Records keep the kiosk's own time and say it was not synchronised (the API dates
them by their boot; hil/refapi/missed.py). A kiosk whose clock *is* synchronised trusts it.

Nothing one item does stops the rest (docs/design-decisions.md, "Sync"):

- The loop runs three jobs, each on its own schedule with its own backoff: uploads, the roster
  (every ``roster_s``) and the heartbeat (every ``heartbeat_s``). Uploads that fail do not
  stop the roster or the heartbeat, which says why the queue is not moving.
- The roster is parsed with the kiosk's own parser (daemon/roster.py) before it replaces the
  file. One the kiosk would refuse is not stored, nor is its ETag (the corrected one comes as
  soon as it is published); the last good roster stays. The refusal is logged (field path,
  never a value), kept in ``roster-status.json`` for ``kioskctl doctor`` and reported in
  every heartbeat (``roster_refused``, ``roster_dropped``).
- A sealed blob (photo or enrolment templates) whose file no longer hashes to its name (the
  card rotted it; checked before sending, and again when the API answers ``hash_mismatch``)
  or is gone can never be sent: a signed ``blob_lost`` record says so
  (:meth:`Outbox.record_blob_lost`) and the record naming it goes up without it. A blob the
  API refuses otherwise (a 4xx, not 401) stays on the kiosk, retried with its own backoff;
  its record goes up without waiting.
- A batch the API refuses as a whole with a 4xx that is not about authentication or the
  clock is split in halves to find the record(s) it refuses alone; each is parked with the
  reason ``refused_alone:<status>:<error>``, exactly like a per-record rejection, and the rest
  retire. Only when the API took other records in the same attempt: if it refuses every
  part, the fault is the API's or the configuration's, and nothing is parked.

Threads: one asyncio loop. The outbox calls are short SQLite transactions made on that loop.
May import: the standard library, ``httpx``, ``daemon.*`` (not drivers).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import email.utils
import hashlib
import json
import logging
import math
import random
import re
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from daemon.clock import Clock, rfc3339
from daemon.config import ApiConfig
from daemon.errors import (
    ApiProtocolError,
    ApiUnreachable,
    KioskError,
    StorageError,
    SyncError,
    TlsError,
)
from daemon.keys import SigningKey, write_private_file
from daemon.outbox import Outbox, Pending
from daemon.reqauth import sign_request
from daemon.roster import RosterInvalid, parse_roster

log = logging.getLogger(__name__)

#: the sync loop looks at the outbox at least this often even without a wake-up
IDLE_POLL_S = 5.0
#: beside roster.json: why the API's latest roster was refused, and whom it left out
ROSTER_STATUS = "roster-status.json"
#: the most left-out roster entries a heartbeat lists (the count is always whole)
DROPPED_LISTED = 20
#: statuses of a refused records batch that may be about one record in it (so it is split);
#: the others (401, 403, 404, 405, 408...) are about the kiosk, the address or the API
SPLIT_STATUSES = frozenset({400, 409, 413, 422})
#: error codes that are never about one record, whatever the status
NOT_ABOUT_A_RECORD = frozenset({"unauthorised", "unknown_device", "clock_skew", "wrong_device"})
#: the most of an answer read into memory: every JSON answer of the contract fits with room to
#: spare (a batch's 500 results with their gaps). A longer error answer is cut short here (only
#: its status and ``error`` code matter); a longer 2xx answer is refused, nothing retired
MAX_ANSWER_BYTES = 1 << 20
#: the largest roster download taken: a roster larger than this is refused (``too_large``)
#: and the last good one stays
MAX_ROSTER_BYTES = 32 << 20
#: a request and its whole answer must be done within this many times ``api.timeout_s``:
#: ``timeout_s`` bounds each wait, so an answer trickled a byte at a time would otherwise never
#: end, and the one loop would never get to the other jobs (docs/design-decisions.md, "Sync")
DEADLINE_FACTOR = 12
#: headers about how the answer travelled, not what it says (its body is kept decoded)
FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    accepted: int
    duplicate: int
    rejected: int


class RetryLater(SyncError):
    """The server asked us to come back later (429/503/5xx), maybe after ``retry_after``."""

    reason = "api_busy"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthRefused(ApiProtocolError):
    """The API refused this kiosk's request signature (401). Right after a key rotation this
    lasts until the API has accepted the key_rotation record; retried with backoff."""

    reason = "api_auth"


class DeviceRetired(ApiProtocolError):
    """The central API retired this kiosk (403 ``device_retired``): its key can send nothing
    more. Nothing is retired locally; an operator imports what is left (docs/kioskctl.md)."""

    reason = "device_retired"


def loads_answer(content: bytes) -> Any:
    """JSON from the API. Raises ValueError for anything Python's parser will not take:
    not JSON, not UTF-8, an integer of more than 4300 digits, and (as RecursionError before)
    arrays or objects nested thousands deep, which must not stop the loop."""
    try:
        return json.loads(content)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _device_retired(response: httpx.Response) -> DeviceRetired | None:
    try:
        body = loads_answer(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("error") != "device_retired":
        return None
    detail = _text(body.get("detail") or "the central API retired this kiosk")
    return DeviceRetired(f"{detail} (403 device_retired)")


class BatchRefused(ApiProtocolError):
    """The API refused a records batch as a whole (a 4xx other than 401 and 429)."""

    reason = "batch_refused"

    def __init__(self, message: str, status: int, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error

    @property
    def splittable(self) -> bool:
        """Could it be about one record in the batch (then the batch is split to find it)?"""
        return self.status in SPLIT_STATUSES and self.error not in NOT_ABOUT_A_RECORD


class AnswerTooLarge(ApiProtocolError):
    """A successful answer longer than the bound for its request (:data:`MAX_ANSWER_BYTES`,
    :data:`MAX_ROSTER_BYTES`): not read further, and taken as no answer."""

    reason = "answer_too_large"

    def __init__(self, message: str, limit: int, etag: str | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.etag = etag


class BlobWaiting(ApiProtocolError):
    """A sealed blob cannot go up now (refused by the API with a 4xx other than 401, not
    readable, or lost and its loss not recordable); it stays on the kiosk, retried with its
    own backoff, and the record naming it goes up without waiting."""

    reason = "blob_waiting"


#: what a code from the API (an ``error``, a record's ``reason``) must look like to be kept,
#: logged, parked with and sent in heartbeats: the contract's codes are all like this
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _code(value: object) -> str | None:
    """``value`` when it is a code as the contract writes them, else None. Anything else the
    API says (free text, a case reference, a megabyte, an object) is never kept or logged:
    the API is not trusted to keep personal data out of what it answers."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None


def _text(value: object, limit: int = 300) -> str:
    """A line of the API's free text (an error's ``detail``) fit for the journal: printable,
    one line, at most ``limit`` characters."""
    line = "".join(c if c.isprintable() else " " for c in str(value))
    return line[:limit] + ("..." if len(line) > limit else "")


def _error_code(response: httpx.Response) -> str:
    """The ``error`` of a JSON error answer, as a safe code ("?" when there is none, or it is
    not a code)."""
    try:
        body = loads_answer(response.content)
    except ValueError:
        return "?"
    return _code(body.get("error") if isinstance(body, dict) else None) or "?"


@dataclass(slots=True)
class _Job:
    """One of the loop's jobs: when it is next due (loop seconds), its consecutive failures,
    and the last one's error (None once it succeeds)."""

    name: str
    due: float = 0.0
    failures: int = 0
    error: KioskError | None = None


@dataclass(slots=True)
class _Split:
    """The search for the record(s) a refused batch is about (see :meth:`_verdicts`)."""

    budget: int
    refusals: int = 1
    evidence: bool = False  # the API took a part of the batch: it does take records
    alone: int = 0  # records refused on their own
    first: BatchRefused | None = None


_AUTH_ADVICE = {
    "unknown_device": "the central API does not know this kiosk; provision it with "
    "`kioskctl provision`",
    "clock_skew": "the kiosk's clock is more than 5 minutes from the central API's; fix time "
    "sync (`kioskctl doctor`, clock rows)",
}


def _auth_refused(response: httpx.Response) -> AuthRefused:
    try:
        error = _code(loads_answer(response.content).get("error")) or ""
    except (ValueError, AttributeError):
        error = ""
    advice = _AUTH_ADVICE.get(
        error,
        "the central API does not accept this kiosk's key (yet): after a key rotation it does "
        "once it has accepted the key_rotation record, which the next records upload carries; "
        "if this lasts, run `kioskctl doctor`",
    )
    return AuthRefused(
        f"{advice} (401 {error or 'unauthorised'}). Check-ins are kept safely on the kiosk; "
        "will retry."
    )


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verification on, against ``ca_bundle`` or the system's CAs; TLS 1.2 or newer."""
    ctx = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def ssl_context(api: ApiConfig) -> ssl.SSLContext:
    """The TLS context for ``api``: :func:`tls_context` with the client certificate (mTLS)
    when the configuration names one."""
    ctx = tls_context(api.ca_bundle)
    if api.client_cert is not None and api.client_key is not None:
        ctx.load_cert_chain(str(api.client_cert), str(api.client_key))
    return ctx


class TooLong(Exception):
    """A 2xx answer longer than the limit :func:`read_answer` was given; ``headers`` are its
    headers. The caller says what that means for its request."""

    def __init__(self, headers: httpx.Headers) -> None:
        super().__init__("answer longer than the limit")
        self.headers = headers


async def read_answer(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    deadline: float,
    limit: int,
    cut_short: bool = False,
    **kw: Any,
) -> httpx.Response:
    """Send a request and read its answer, at most ``limit`` bytes of it (decoded), the whole
    exchange (connecting, TLS, the headers and the body) within ``deadline`` seconds: the
    client's timeout bounds each wait only, so an API that trickles a byte at a time, in its
    headers or its body, would otherwise never be done. A longer 2xx answer raises
    :class:`TooLong` unless ``cut_short`` (only its status counts); a longer error answer is
    always cut short. The answer comes back whole in memory, as ``httpx.Response`` with the
    body decoded. Raises TimeoutError past the deadline, ``httpx.HTTPError`` for the network
    and for a body that cannot be decoded."""
    data = bytearray()
    async with asyncio.timeout(deadline), http.stream(method, path, **kw) as streamed:
        async for chunk in streamed.aiter_bytes():
            data += chunk
            if len(data) <= limit:
                continue
            if streamed.is_success and not cut_short:
                raise TooLong(streamed.headers)
            del data[limit:]
            break
    keep = [(k, v) for k, v in streamed.headers.raw if k.lower().decode() not in FRAMING_HEADERS]
    return httpx.Response(
        streamed.status_code, headers=keep, content=bytes(data), request=streamed.request
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _reason(value: object) -> str:
    """A rejected record's reason as it is parked: the API's code, ``unspecified`` when it
    gave none, ``unreadable_reason`` when what it gave is not a code (see :func:`_code`)."""
    if value is None or value == "":
        return "unspecified"
    return _code(value) or "unreadable_reason"


#: an ETag the kiosk keeps and sends back: visible ASCII, as RFC 9110 has it (obs-text aside)
_ETAG = re.compile(r"[\x21-\x7e]{1,256}")


def _etag(response: httpx.Response) -> str | None:
    """The answer's ETag when the kiosk can send it back in If-None-Match, else None (then
    the roster is downloaded whole each time, which costs only bandwidth)."""
    value = response.headers.get("ETag")
    return value if value is not None and _ETAG.fullmatch(value) else None


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _same_int(value: object, expected: int) -> bool:
    """``value`` is the integer ``expected`` (not ``true`` for 1, nor ``1.0``)."""
    return type(value) is int and value == expected


def _chain_report(answer: Mapping[str, Any]) -> tuple[int, list[tuple[int, int]]]:
    """A records answer's ``last_seq`` (the highest seq the API holds) and ``gaps`` (the
    inclusive ranges it is missing), which the contract requires. Raises ApiProtocolError
    when they are absent or not of that shape."""
    last_seq, gaps = answer.get("last_seq"), answer.get("gaps")
    bad = ApiProtocolError(
        "the central API's answer has no usable last_seq and gaps (the contract requires "
        "them); nothing retired, will retry"
    )
    if type(last_seq) is not int or last_seq < 0 or not isinstance(gaps, list):
        raise bad
    ranges: list[tuple[int, int]] = []
    for gap in gaps:
        if not (isinstance(gap, list) and len(gap) == 2 and all(type(n) is int for n in gap)):
            raise bad
        first, last = gap
        if not 1 <= first <= last:
            raise bad
        ranges.append((first, last))
    return last_seq, _merged(ranges)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges sorted, with those that overlap or touch made one."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _in_gaps(seq: int, gaps: list[tuple[int, int]], starts: list[int]) -> bool:
    """``seq`` is in one of ``gaps`` (merged; ``starts`` their first seqs): by bisection, as an
    answer may list tens of thousands of gaps."""
    i = bisect.bisect_right(starts, seq) - 1
    return i >= 0 and gaps[i][1] >= seq


def batch_key(device: str, batch: list[Pending]) -> str:
    digest = hashlib.sha256("\n".join(p.compact for p in batch).encode()).hexdigest()[:32]
    return f"{device}:{batch[0].seq}-{batch[-1].seq}:{digest}"


class SyncClient:
    """Uploads the outbox to the central API. See the module docstring.

    ``transport`` replaces the network in unit tests only (``httpx.MockTransport``); ``rng``
    and ``sleep`` are injected so backoff is testable. ``roster_path``: where the roster lives
    (``roster.json`` in the data directory); None for a client that never fetches it.
    """

    def __init__(
        self,
        outbox: Outbox,
        api: ApiConfig,
        key: SigningKey,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: Callable[[], float] = random.random,
        health: Callable[[], Mapping[str, Any]] | None = None,
        roster_path: Path | None = None,
    ) -> None:
        self.outbox = outbox
        self.api = api
        self.key = key
        self.device = outbox.device
        self.clock = clock
        self._rng = rng
        self._health = health or (lambda: {})
        self.roster_path = roster_path
        self.wakeup = asyncio.Event()
        self.last_success_wall: float | None = None
        #: the API's clock minus ours, learnt from a clock_skew refusal (see the docstring)
        self.api_clock_offset_s = 0.0
        self._upload = _Job("upload")
        self._roster = _Job("roster")
        self._heartbeat = _Job("heartbeat")
        #: blobs waiting after a refusal: sha -> (failures, monotonic seconds not before)
        self._blob_retry: dict[str, tuple[int, float]] = {}
        #: parts of the pending batch refused as a whole, by (first seq, last seq): a split
        #: search cut short by its budget carries on from them next time (see _bisect)
        self._refused_parts: dict[tuple[int, int], BatchRefused] = {}
        #: the gaps of the API's latest records answer, and the acknowledged records sent
        #: again since start because it reported them missing (each once: see resend_missing)
        self._claimed: list[tuple[int, int]] = []
        self._resent: set[int] = set()
        #: records asked again whose answer could not be read: not again in this run
        self._asked_unreadable: set[int] = set()
        #: why the API's latest roster was refused (None: it was not), and whom the roster in
        #: use leaves out; read back from roster-status.json so a restart still reports them
        self.roster_refused: dict[str, Any] | None = None
        self.roster_dropped: list[str] = []
        self._roster_checked: tuple[int, int] | None = None  # (mtime_ns, size) parsed fine
        self._load_roster_status()
        base = api.url.rstrip("/")
        kwargs: dict[str, Any] = {
            "base_url": base,
            "timeout": httpx.Timeout(api.timeout_s),
            "headers": {"User-Agent": f"probation-kiosk/{outbox.app_version}"},
        }
        if transport is None:
            # TCP_NODELAY: a request's headers and body go out as separate segments; with
            # Nagle's algorithm the body waits for the server's delayed ACK (~40 ms a request).
            transport = httpx.AsyncHTTPTransport(
                verify=ssl_context(api),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
        kwargs["transport"] = transport
        self._http = httpx.AsyncClient(**kwargs)
        self._path_prefix = httpx.URL(base).path.rstrip("/")

    async def aclose(self) -> None:
        await self._http.aclose()

    def wake(self) -> None:
        """A new record is committed: sync now."""
        self.wakeup.set()

    @property
    def last_error(self) -> KioskError | None:
        """The error of a job that is failing now (uploads first), or None when none is."""
        for job in (self._upload, self._roster, self._heartbeat):
            if job.error is not None:
                return job.error
        return None

    # --- HTTP -----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        limit: int = MAX_ANSWER_BYTES,
        _retried: bool = False,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if signed:
            hdrs["Authorization"] = sign_request(
                self.key, self.device, method, self._path_prefix + path, body, self._now()
            )
        try:
            response = await self._exchange(method, path, body, hdrs, limit)
        except httpx.ConnectError as exc:
            if isinstance(exc.__context__, ssl.SSLError) or "CERTIFICATE" in str(exc).upper():
                raise TlsError(
                    "the central API's certificate could not be verified; check the CA bundle "
                    "(api.ca_bundle) and the kiosk's clock, or call the field engineer."
                ) from exc
            raise ApiUnreachable(
                "cannot reach the central API; check the network cable or Wi-Fi. Check-ins "
                "are kept safely on the kiosk and will be sent later."
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiUnreachable("the central API did not answer in time; will retry") from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"network error talking to the central API ({exc})") from exc
        except httpx.DecodingError as exc:  # a Content-Encoding the body does not follow
            raise ApiProtocolError(
                "the central API's answer could not be decoded (its Content-Encoding is wrong); "
                "nothing was retired. Will retry."
            ) from exc
        if response.status_code in (429, 503) or response.status_code >= 500:
            raise RetryLater(
                f"the central API answered {response.status_code}; will retry",
                _retry_after(response),
            )
        if response.status_code == 401:
            if signed and not _retried and self._learn_api_clock(response):
                return await self._request(
                    method, path, body=body, headers=headers, signed=signed, limit=limit,
                    _retried=True,
                )  # fmt: skip
            raise _auth_refused(response)
        if response.status_code == 403 and (retired := _device_retired(response)) is not None:
            raise retired
        return response

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], limit: int
    ) -> httpx.Response:
        """Send the request and read its answer, at most ``limit`` bytes of it (decoded), all
        within the deadline (:data:`DEADLINE_FACTOR`). A longer 2xx answer raises
        AnswerTooLarge; a longer error answer is cut short (its status is what counts). The
        answer comes back whole in memory, as ``httpx.Response`` with the body decoded."""
        deadline = self.api.timeout_s * DEADLINE_FACTOR
        try:
            return await read_answer(
                self._http, method, path, deadline=deadline, limit=limit, content=body,
                headers=headers,
            )  # fmt: skip
        except TimeoutError as exc:
            raise ApiUnreachable(
                f"the central API did not finish answering within {deadline:.0f} s; will retry. "
                "Check-ins are kept safely on the kiosk."
            ) from exc
        except TooLong as exc:
            what = "blob" if path.startswith("/v1/blobs/") else path.split("/")[-1]
            raise AnswerTooLarge(
                f"the central API's answer to {method} {what} is larger than "
                f"{limit // 1024} KiB, more than the contract allows; it was not read and "
                "nothing was retired. Will retry.",
                limit,
                exc.headers.get("ETag"),
            ) from None

    def _now(self) -> float:
        """The time requests are signed with: ours when synchronised, else ours corrected by
        what the API's clock told us."""
        if self.clock.synced():
            self.api_clock_offset_s = 0.0
        return self.clock.wall() + self.api_clock_offset_s

    def _learn_api_clock(self, response: httpx.Response) -> bool:
        """After a ``clock_skew`` refusal: take the offset from the API's ``Date`` header.
        True when there is a new offset to retry with."""
        try:
            if loads_answer(response.content).get("error") != "clock_skew":
                return False
            api_now = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        offset = api_now - self.clock.wall()
        if self.clock.synced() or abs(offset - self.api_clock_offset_s) < 2.0:
            return False  # our clock is right, or we already use the API's: nothing to learn
        log.warning(
            "the kiosk's clock is %.0f s from the central API's and not synchronised; signing "
            "requests with the API's time until time sync works (check NTP, UDP port 123)",
            offset,
        )
        self.api_clock_offset_s = offset
        return True

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return loads_answer(response.content)
        except ValueError as exc:
            raise ApiProtocolError(
                f"the central API answered {response.status_code} with something that is not "
                "JSON; nothing was retired. Will retry."
            ) from exc

    # --- blobs ----------------------------------------------------------------------------
    def _blob_due(self, sha: str) -> bool:
        """Not in its own backoff after a refusal."""
        waiting = self._blob_retry.get(sha)
        return waiting is None or self.clock.monotonic_ns() / 1e9 >= waiting[1]

    def _blob_failed(self, sha: str) -> None:
        failures = self._blob_retry.get(sha, (0, 0.0))[0] + 1
        delay = self._backoff(failures - 1, None)
        self._blob_retry[sha] = (failures, self.clock.monotonic_ns() / 1e9 + delay)

    def _lose_blob(self, sha: str, reason: str) -> None:
        """The blob can never be sent (``damaged`` or ``missing``): record that in the chain
        (Outbox.record_blob_lost) and forget it. Raises BlobWaiting when the record cannot be
        written (then the blob stays, and its loss is tried again later)."""
        try:
            seq = self.outbox.record_blob_lost(sha, reason)
        except StorageError as exc:
            self._blob_failed(sha)
            raise BlobWaiting(
                f"sealed blob {sha[:8]}.. is {reason} on the kiosk and its loss could not be "
                f"recorded ({exc.reason}); kept, tried again later"
            ) from exc
        self._blob_retry.pop(sha, None)
        log.error(
            "sealed blob %s.. is %s on this kiosk and can never be sent; its record goes up "
            "without it, and blob_lost record seq %d tells the central system",
            sha[:8],
            reason,
            seq,
        )

    async def _upload_blob(self, sha: str) -> None:
        """Send one sealed blob, or settle it as lost. Raises BlobWaiting when it must wait
        (see the module docstring), AuthRefused and the transient SyncErrors as they come."""
        path = self.outbox.blob_path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._lose_blob(sha, "missing")
            return
        except OSError as exc:  # EIO from a failing card: maybe it reads next time
            self._blob_failed(sha)
            raise BlobWaiting(
                f"sealed blob {sha[:8]}.. cannot be read ({exc.strerror}); kept, tried again later"
            ) from exc
        if hashlib.sha256(data).hexdigest() != sha:
            self._lose_blob(sha, "damaged")
            return
        try:
            response = await self._request(
                "PUT",
                f"/v1/blobs/{sha}",
                body=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        except (AuthRefused, DeviceRetired):
            raise
        except ApiProtocolError as exc:  # an answer it cannot read (too large, undecodable)
            self._blob_failed(sha)
            raise BlobWaiting(
                f"the central API's answer to sealed blob {sha[:8]}.. could not be read "
                f"({exc.reason}); it stays on the kiosk and is tried again later"
            ) from exc
        if response.status_code in (200, 201):
            self.outbox.mark_blob_uploaded(sha)
            self._blob_retry.pop(sha, None)
            return
        error = _error_code(response)
        if error == "hash_mismatch":  # the API saw other bytes: read the file again
            with contextlib.suppress(OSError):
                if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                    self._lose_blob(sha, "damaged")
                    return
        self._blob_failed(sha)
        raise BlobWaiting(
            f"the central API refused sealed blob {sha[:8]}.. ({response.status_code} {error}); "
            "it stays on the kiosk and is tried again later"
        )

    async def upload_deferred_blobs(self) -> int:
        """Upload every sealed photo still marked not uploaded (deferred by a 401 after a key
        rotation, or refused; see the module docstring) whose own backoff has run out. Returns
        how many were settled (sent, or recorded as lost). Raises a :class:`SyncError`
        (AuthRefused while the API still refuses the key, or a transient one) and keeps the
        rest for the next try. A file whose records are all resolved is deleted at once."""
        settled = 0
        for sha in self.outbox.blobs_not_uploaded():
            if not self._blob_due(sha):
                continue
            try:
                await self._upload_blob(sha)
            except BlobWaiting as exc:
                log.warning("sync: %s", exc.message)
                continue
            settled += 1
        return settled

    async def _send_blobs(self, batch: list[Pending]) -> None:
        """The batch's blobs before its records. A blob that must wait does not hold up the
        records; after a 401 the rest wait too (the records may carry the key_rotation that
        makes the API accept the key)."""
        refused = False
        for item in batch:
            sha = item.photo
            if not sha or refused or self.outbox.blob_uploaded(sha) or not self._blob_due(sha):
                continue
            try:
                await self._upload_blob(sha)
            except AuthRefused as exc:
                refused = True
                log.warning("sync: photo upload refused, sending the records first: %s",
                            exc.message)  # fmt: skip
            except BlobWaiting as exc:
                log.warning("sync: %s; its record goes up without waiting", exc.message)

    # --- records --------------------------------------------------------------------------
    async def _send(
        self, batch: list[Pending], *, key: str | None = None
    ) -> list[tuple[str, str | None]]:
        """POST one batch; return the API's verdict per record: (``accepted`` | ``duplicate``
        | ``rejected``, reason). Raises BatchRefused (a 4xx for the whole batch) or another
        SyncError; nothing is retired here. The answer's gaps are kept for
        :meth:`resend_missing`."""
        body = json.dumps({"records": [p.compact for p in batch]}).encode()
        response = await self._request(
            "POST",
            f"/v1/devices/{self.device}/records",
            body=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": key or batch_key(self.device, batch),
            },
        )
        if response.status_code != 200:
            error = _error_code(response)
            if 400 <= response.status_code < 500:
                raise BatchRefused(
                    f"the central API refused the batch ({response.status_code}: {error}); "
                    "will retry",
                    response.status_code,
                    error,
                )
            raise ApiProtocolError(
                f"the central API answered the batch with {response.status_code}; will retry"
            )
        answer = self._json(response)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(batch):
            raise ApiProtocolError(
                "the central API's answer does not list one result per record; nothing retired"
            )
        held_upto, gaps = _chain_report(answer)
        starts = [first for first, _last in gaps]
        verdicts: list[tuple[str, str | None]] = []
        for index, (item, result) in enumerate(zip(batch, results, strict=True)):
            if (
                not isinstance(result, dict)
                or not _same_int(result.get("index", index), index)
                or not _same_int(result.get("seq"), item.seq)
                or result.get("id") != item.id
            ):
                raise ApiProtocolError(
                    "the central API's answer does not match the records sent; nothing retired"
                )
            status = result.get("status")
            if status in ("accepted", "duplicate"):
                if item.seq > held_upto or _in_gaps(item.seq, gaps, starts):
                    raise ApiProtocolError(
                        f"the central API acknowledged record seq {item.seq} ({status}) but says "
                        "in the same answer that it does not hold it (last_seq, gaps); nothing "
                        "retired, will retry. If it lasts, tell the central API's service desk."
                    )
                verdicts.append((str(status), None))
            elif status == "rejected":
                verdicts.append(("rejected", _reason(result.get("reason"))))
            else:
                raise ApiProtocolError(
                    f"unknown record status {_code(status) or '?'}; nothing retired"
                )
        self._claimed = gaps
        return verdicts

    async def resend_missing(self) -> int:
        """Send again the records the API acknowledged earlier and now reports missing (in the
        gaps of its latest answer: an API restored from a backup, or one that lost them),
        those this kiosk still holds (acknowledged records are kept ``keep_acked_days``).
        Each goes again at most once while kiosk-sync runs, under an Idempotency-Key of its
        own (not the first batch's, whose stored answer would only be replayed): an API that
        keeps saying so costs one request per record, not a loop. One it rejects now is
        parked with the reason. Returns how many were sent again. Raises the SyncErrors that
        mean no answer came (the network, the API busy, its refusal of this kiosk); then they
        are tried again with the upload's backoff."""
        claimed, self._claimed = self._claimed, []
        after = sent = 0
        while batch := self.outbox.retired_in(claimed, after=after, limit=self.api.batch_size):
            after = batch[-1].seq
            batch = [p for p in batch if p.seq not in self._resent]
            if not batch:
                continue
            log.warning(
                "the central API reports %d record(s) it acknowledged earlier as missing "
                "(seq %d to %d); sending them again from this kiosk's copy",
                len(batch),
                batch[0].seq,
                batch[-1].seq,
            )
            try:
                verdicts = await self._send(batch, key="again:" + batch_key(self.device, batch))
            except (AuthRefused, DeviceRetired):
                self._claimed = claimed
                raise
            except ApiProtocolError as exc:  # an answer, and not a usable one: not again
                log.error("sync: records sent again were not taken: %s", exc.message)
                verdicts = []
            except SyncError:
                self._claimed = claimed
                raise
            self._resent.update(p.seq for p in batch)
            sent += len(batch)
            parked = {item.seq: reason or "unspecified"
                      for item, (status, reason) in zip(batch, verdicts, strict=False)
                      if status == "rejected"}  # fmt: skip
            if parked:
                self.outbox.park_retired(parked)
        taken, rejected = await self.send_asked_again()
        return sent + taken + rejected

    async def send_asked_again(self) -> tuple[int, int]:
        """Send the parked records an engineer asked to send again (``kioskctl outbox
        send-again``, once the API's fault is fixed): taken, they are no longer parked;
        rejected again, parked with the new reason. An answer that cannot be read leaves them
        asked, not sent again until kiosk-sync restarts (no loop). Returns how many were taken
        and how many rejected again. Raises the SyncErrors that mean no answer came; they are
        tried again with the upload's backoff."""
        after = taken_n = rejected_n = 0
        while batch := self.outbox.asked_again(after=after, limit=self.api.batch_size):
            after = batch[-1].seq
            batch = [p for p in batch if p.seq not in self._asked_unreadable]
            if not batch:
                continue
            try:
                # a key of its own each time: an earlier request for these seqs (the first
                # send, or an earlier ask) has a stored answer that would only be replayed;
                # a record the API took meanwhile comes back as a duplicate
                key = f"asked:{secrets.token_hex(8)}:" + batch_key(self.device, batch)
                verdicts = await self._send(batch, key=key)
            except ApiProtocolError as exc:
                log.error("sync: records sent again were not taken: %s", exc.message)
                self._asked_unreadable.update(p.seq for p in batch)
                continue
            taken = [item.seq for item, (status, _r) in zip(batch, verdicts, strict=True)
                     if status != "rejected"]  # fmt: skip
            rejected = {item.seq: reason or "unspecified"
                        for item, (status, reason) in zip(batch, verdicts, strict=True)
                        if status == "rejected"}  # fmt: skip
            self.outbox.sent_again(taken, rejected)
            log.info("sync: %d parked record(s) sent again: %d taken, %d rejected again",
                     len(batch), len(taken), len(rejected))  # fmt: skip
            taken_n += len(taken)
            rejected_n += len(rejected)
        return taken_n, rejected_n

    async def _verdicts(self, batch: list[Pending]) -> list[tuple[str, str | None]]:
        """The verdict per record for ``batch``. A batch refused as a whole with a 4xx that may
        be about one record (:attr:`BatchRefused.splittable`) is split in halves, depth first,
        until the records refused alone are found: they get ``rejected`` with the reason
        ``refused_alone:<status>:<error>``. That verdict stands only when the API took another
        part of the batch in the same attempt; if it took none (it refuses everything: an API
        or configuration fault), or keeps refusing past ``2 + 2 log2(n)`` tries without taking
        anything, BatchRefused is raised and nothing is retired."""
        try:
            return await self._send(batch)
        except BatchRefused as exc:
            if not exc.splittable or len(batch) == 1:
                raise
            search = _Split(budget=2 + 2 * math.ceil(math.log2(len(batch))), first=exc)
        verdicts = await self._bisect(batch, search)
        if search.alone and not search.evidence:
            raise self._refused_everything(search)
        if search.alone:
            log.warning(
                "sync: the central API refused a batch of %d (%d %s); %d record(s) it refuses "
                "alone are parked, the rest went up",
                len(batch),
                search.first.status if search.first else 0,
                search.first.error if search.first else "?",
                search.alone,
            )
        return verdicts

    async def _bisect(self, batch: list[Pending], search: _Split) -> list[tuple[str, str | None]]:
        """Send both halves, then look inside the refused ones: the sibling of a refused half
        goes first, so a batch with any sound half shows at once that the API takes records
        (a single bad record costs two requests per level, and the search is short). Parts
        refused in an earlier attempt at the same batch are not sent again, so a search cut
        short by its budget goes further each time, and finds the bad records if the API
        takes any of the others."""
        mid = len(batch) // 2
        halves = (batch[:mid], batch[mid:])
        answers: list[list[tuple[str, str | None]] | BatchRefused] = []
        for half in halves:
            span = (half[0].seq, half[-1].seq)
            # a part refused in an earlier attempt is not sent again while this search has
            # seen the API take nothing (it may still be refusing everything); a single
            # record is always sent again before it is parked: an old refusal may date from
            # such a time, and must never park a record the API would take now
            known = self._refused_parts.get(span) if len(half) > 1 and not search.evidence else None
            if known is not None:
                answers.append(known)
                continue
            try:
                answers.append(await self._send(half))
            except BatchRefused as exc:
                if not exc.splittable:
                    raise
                self._refused_parts[span] = exc
                if not search.evidence:
                    search.refusals += 1
                    if search.refusals > search.budget:
                        raise self._refused_everything(search) from exc
                answers.append(exc)
            else:
                search.evidence = True
        out: list[tuple[str, str | None]] = []
        for half, answer in zip(halves, answers, strict=True):
            if isinstance(answer, list):
                out += answer
            elif len(half) > 1:
                out += await self._bisect(half, search)
            else:
                search.alone += 1
                out.append(("rejected", f"refused_alone:{answer.status}:{answer.error}"))
        return out

    @staticmethod
    def _refused_everything(search: _Split) -> BatchRefused:
        first = search.first
        status, error = (first.status, first.error) if first else (0, "?")
        return BatchRefused(
            f"the central API refuses these records however they are sent ({status}: {error}); "
            "this is not one record's fault: nothing parked, will retry. If it lasts, call the "
            "field engineer (`kioskctl doctor`, api rows).",
            status,
            error,
        )

    async def push_batch(self, batch: list[Pending]) -> BatchOutcome:
        """Upload one batch (its blobs first); retire or park per the server's answer. A
        photo refused with 401 is kept for :meth:`upload_deferred_blobs` and the records go
        up anyway: they may carry the key_rotation that makes the API accept the key. A
        damaged or missing photo is recorded as lost and its record goes up without it; a
        batch refused as a whole is split to find the records to park (see the module
        docstring)."""
        await self._send_blobs(batch)
        verdicts = await self._verdicts(batch)
        parked = {
            item.seq: reason or "unspecified"
            for item, (status, reason) in zip(batch, verdicts, strict=True)
            if status == "rejected"
        }
        self.outbox.resolve(batch[-1].seq, parked)
        self._refused_parts.clear()
        self.outbox.write_anchor_hint()
        dup = sum(1 for status, _reason in verdicts if status == "duplicate")
        return BatchOutcome(
            accepted=len(batch) - len(parked) - dup, duplicate=dup, rejected=len(parked)
        )

    async def drain(self) -> int:
        """Push batches until the outbox has nothing pending, then any deferred photos;
        return records retired or parked. Raises a :class:`SyncError` on the first failure
        (nothing lost)."""
        done = 0
        while True:
            batch = self.outbox.pending(self.api.batch_size)
            if not batch:
                await self.resend_missing()
                await self.upload_deferred_blobs()
                return done
            outcome = await self.push_batch(batch)
            done += outcome.accepted + outcome.duplicate + outcome.rejected

    # --- roster ---------------------------------------------------------------------------
    @property
    def _status_path(self) -> Path | None:
        return None if self.roster_path is None else self.roster_path.with_name(ROSTER_STATUS)

    def _load_roster_status(self) -> None:
        path = self._status_path
        if path is None:
            return
        try:
            saved = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(saved, dict):
            refused = saved.get("refused")
            self.roster_refused = refused if isinstance(refused, dict) else None
            dropped = saved.get("dropped")
            self.roster_dropped = [str(d) for d in dropped] if isinstance(dropped, list) else []

    def _save_roster_status(self, refused: dict[str, Any] | None, dropped: list[str]) -> None:
        changed = (refused, dropped) != (self.roster_refused, self.roster_dropped)
        self.roster_refused, self.roster_dropped = refused, dropped
        path = self._status_path
        if path is None or not changed:
            return
        try:
            body = json.dumps({"refused": refused, "dropped": dropped}, indent=1).encode()
            write_private_file(path, body)
        except OSError as exc:  # the heartbeat still says it
            log.warning("roster status not saved (%s)", exc.strerror)

    def _roster_on_disk_usable(self) -> bool:
        """The roster file on disk is one the kiosk takes (checked once per version of the
        file). One that is not (written before sync checked rosters) must not be kept by
        sending its ETag: then the API's current roster comes whatever it is."""
        assert self.roster_path is not None
        try:
            st = self.roster_path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._roster_checked:
            return True
        try:
            parse_roster(json.loads(self.roster_path.read_bytes()), drop_bad_people=True)
        except (OSError, ValueError, RosterInvalid) as exc:
            log.warning("the roster file on the kiosk is not usable (%s); fetching it anew", exc)
            return False
        self._roster_checked = stamp
        return True

    def _refuse_roster(self, reason: str, where: str | None, what: str, etag: str | None) -> None:
        """Keep the last good roster; remember, log and report why this one was refused."""
        refused = {"reason": reason, "field": where, "what": what, "etag": etag,
                   "at": rfc3339(self.clock.wall())}  # fmt: skip
        previous = self.roster_refused or {}
        again = (previous.get("etag"), previous.get("field")) == (etag, where)
        if again:
            refused["at"] = previous.get("at", refused["at"])  # since when, not the last look
        else:
            log.error(
                "roster refused (%s%s%s): the kiosk keeps its last good roster and will fetch "
                "a corrected one; tell the service desk",
                reason,
                f" at {where}" if where else "",
                f": {what}" if what else "",
            )
        self._save_roster_status(refused, self.roster_dropped)

    async def fetch_roster(self) -> bool:
        """Download the roster if it changed (ETag). Returns True when a new one was stored.

        The download replaces the file only when the kiosk's own parser takes it (people whose
        entry is not valid left out: ``roster_dropped``); otherwise the last good roster stays,
        the new ETag is not kept, and the refusal is reported (``roster_refused``)."""
        if self.roster_path is None:
            return False
        etag_path = self.roster_path.with_suffix(".etag")
        headers = {}
        saved = _read_or_none(etag_path)
        offered = "" if saved is None else saved.decode("ascii", "replace").strip()
        if _ETAG.fullmatch(offered) and self._roster_on_disk_usable():
            headers["If-None-Match"] = offered
        try:
            response = await self._request(
                "GET", f"/v1/devices/{self.device}/roster", headers=headers, limit=MAX_ROSTER_BYTES
            )
        except AnswerTooLarge as exc:
            what = f"the download is larger than {exc.limit >> 20} MiB, the most the kiosk takes"
            etag = exc.etag if exc.etag is not None and _ETAG.fullmatch(exc.etag) else None
            self._refuse_roster("too_large", None, what, etag)
            return False
        if response.status_code == 304 and "If-None-Match" not in headers:
            raise ApiProtocolError(
                "the central API answered 304 Not Modified to a roster request that named no "
                "roster; the kiosk keeps the one it has (if any) and asks again later"
            )
        if response.status_code in (304, 404):  # the roster in use is the API's, or there is none
            self._save_roster_status(None, self.roster_dropped)
            return False
        if response.status_code != 200:
            raise ApiProtocolError(f"roster download failed ({response.status_code})")
        etag = _etag(response)
        try:
            roster = parse_roster(loads_answer(response.content), drop_bad_people=True)
        except RosterInvalid as exc:
            self._refuse_roster(exc.reason, exc.field, exc.what, etag)
            return False
        except ValueError:  # not JSON, not UTF-8, or JSON Python's parser will not take
            self._refuse_roster("not_json", None, "the download is not JSON", etag)
            return False
        try:
            same = _read_or_none(self.roster_path) == response.content
            if not same:  # a new ETag on the same roster (a changing ETag) writes no roster
                write_private_file(self.roster_path, response.content)
            if etag:
                write_private_file(etag_path, etag.encode())
            else:  # an ETag kept from an older roster would name the wrong one
                etag_path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"the new roster could not be saved ({exc.strerror})") from exc
        dropped = [str(d) for d in roster.dropped]
        if same:
            self._save_roster_status(None, dropped)
            return False
        if dropped:
            log.warning(
                "roster stored with %d entries left out (not valid): %s",
                len(dropped),
                "; ".join(dropped[:5]),
            )
        self._save_roster_status(None, dropped)
        return True

    def roster_report(self) -> dict[str, Any]:
        """The heartbeat's roster figures (none without a roster path): ``roster_refused``
        (None, or reason, field, what, since when and the refused roster's ETag) and
        ``roster_dropped`` (the field paths of entries left out, at most
        :data:`DROPPED_LISTED`; ``roster_dropped_count`` says how many)."""
        if self.roster_path is None:
            return {}
        return {
            "roster_refused": self.roster_refused,
            "roster_dropped": self.roster_dropped[:DROPPED_LISTED],
            "roster_dropped_count": len(self.roster_dropped),
        }

    # --- heartbeat ------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        stats = self.outbox.stats()
        upload_error = self._upload.error
        body = {
            "queue_depth": stats.depth,
            "oldest_unsent_s": stats.oldest_unsent_s,
            "parked": stats.parked,
            "parked_reasons": self.outbox.parked_reasons(),
            "blobs_waiting": stats.blobs_pending,
            "upload_error": None if upload_error is None else upload_error.reason,
            "last_seq": stats.last_seq,
            "app": self.outbox.app_version,
            "clock_synced": self.clock.synced(),
            **self.roster_report(),
            **self._health(),
        }
        response = await self._request(
            "POST",
            f"/v1/devices/{self.device}/heartbeat",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if response.status_code != 200:
            raise ApiProtocolError(f"heartbeat refused ({response.status_code})")

    # --- the loop -------------------------------------------------------------------------
    def _backoff(self, failures: int, retry_after: float | None, cap: float | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**failures)], at least Retry-After."""
        cap = self.api.backoff_cap_s if cap is None else min(cap, self.api.backoff_cap_s)
        ceiling: float = min(cap, self.api.backoff_base_s * 2 ** min(failures, 30))
        delay = self._rng() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.api.backoff_cap_s))
        return delay

    @property
    def failures(self) -> int:
        """Consecutive failed upload passes (they drive the upload backoff)."""
        return self._upload.failures

    @failures.setter
    def failures(self, value: int) -> None:
        self._upload.failures = value

    def backoff_s(self, retry_after: float | None = None) -> float:
        """The upload backoff after :attr:`failures` consecutive failures."""
        return self._backoff(self.failures, retry_after)

    async def _run_job(
        self,
        job: _Job,
        work: Callable[[], Awaitable[object]],
        now: float,
        every: float,
        *,
        capped: bool = True,
    ) -> None:
        """Run one job; on success it is next due in ``every`` seconds, on failure after its
        own backoff: at most ``every`` when ``capped`` (a heartbeat or roster is never later
        than usual), else up to the configured cap (uploads)."""
        try:
            await work()
        except KioskError as exc:  # a SyncError, or the disk (StorageError): try again later
            job.failures += 1
            job.error = exc
            retry = exc.retry_after if isinstance(exc, RetryLater) else None
            delay = self._backoff(job.failures, retry, cap=every if capped else None)
            job.due = now + delay
            log.warning("sync: %s: %s (retry in %.1f s)", job.name, exc.message, delay)
        else:
            job.failures = 0
            job.error = None
            job.due = now + every

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set: uploads, roster and heartbeat, each when it is due and
        each backing off on its own failures, so none waits for another."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.wakeup.clear()
            now = loop.time()
            if now >= self._upload.due:
                await self._run_job(self._upload, self.drain, now, IDLE_POLL_S, capped=False)
            if now >= self._roster.due:
                await self._run_job(self._roster, self.fetch_roster, now, self.api.roster_s)
            if now >= self._heartbeat.due:
                await self._run_job(self._heartbeat, self.heartbeat, now, self.api.heartbeat_s)
            if self.last_error is None:
                self.last_success_wall = self.clock.wall()
            if stop.is_set():
                break
            due = min(self._upload.due, self._roster.due, self._heartbeat.due)
            delay = max(0.0, due - loop.time())
            waiters = [asyncio.ensure_future(stop.wait())]
            if not self.failures:  # while uploads back off, a new record does not cut in
                waiters.append(asyncio.ensure_future(self.wakeup.wait()))
            _done, pending = await asyncio.wait(
                waiters, timeout=delay, return_when="FIRST_COMPLETED"
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.wakeup.is_set() and not self.failures:
                self._upload.due = 0.0  # a new record: upload now
