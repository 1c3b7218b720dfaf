"""The sync client: records and sealed photos up, the roster down, heartbeats.

Async ``httpx`` client with TLS verification always on (a configured CA bundle or the system's)
and an optional client certificate (mTLS). Records go up in batches with an
``Idempotency-Key`` derived from the batch's content, so a resend after a crash or a lost
answer is recognised by the server; the answer is per record (accepted / duplicate / rejected
with a reason). Accepted and duplicate records are retired; rejected ones are parked with the
reason for an engineer, never deleted and never retried forever. Anything else — a dead
network, a TLS failure, a 5xx, a refused signature (401), an answer that does not follow the
contract — retires nothing and backs off exponentially with full jitter and a cap, honouring
``Retry-After``. A new record wakes the loop at once.

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

Threads: one asyncio loop. The outbox calls are short SQLite transactions made on that loop.
May import: the standard library, ``httpx``, ``daemon.*`` (not drivers).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import random
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from daemon.clock import Clock
from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable, KioskError, SyncError, TlsError
from daemon.keys import SigningKey, write_private_file
from daemon.outbox import Outbox, Pending
from daemon.reqauth import sign_request

log = logging.getLogger(__name__)

#: the sync loop looks at the outbox at least this often even without a wake-up
IDLE_POLL_S = 5.0


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


def _device_retired(response: httpx.Response) -> DeviceRetired | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("error") != "device_retired":
        return None
    return DeviceRetired(
        f"{body.get('detail') or 'the central API retired this kiosk'} (403 device_retired)"
    )


_AUTH_ADVICE = {
    "unknown_device": "the central API does not know this kiosk; provision it with "
    "`kioskctl provision`",
    "clock_skew": "the kiosk's clock is more than 5 minutes from the central API's; fix time "
    "sync (`kioskctl doctor`, clock rows)",
}


def _auth_refused(response: httpx.Response) -> AuthRefused:
    try:
        error = str(response.json().get("error", ""))
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


def _ssl_context(api: ApiConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(api.ca_bundle) if api.ca_bundle else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if api.client_cert is not None and api.client_key is not None:
        ctx.load_cert_chain(str(api.client_cert), str(api.client_key))
    return ctx


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def batch_key(device: str, batch: list[Pending]) -> str:
    digest = hashlib.sha256("\n".join(p.compact for p in batch).encode()).hexdigest()[:32]
    return f"{device}:{batch[0].seq}-{batch[-1].seq}:{digest}"


class SyncClient:
    """Uploads the outbox to the central API. See the module docstring.

    ``transport`` replaces the network in unit tests only (``httpx.MockTransport``); ``rng``
    and ``sleep`` are injected so backoff is testable.
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
        self.failures = 0
        self.last_error: KioskError | None = None
        self.last_success_wall: float | None = None
        #: the API's clock minus ours, learnt from a clock_skew refusal (see the docstring)
        self.api_clock_offset_s = 0.0
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
                verify=_ssl_context(api),
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

    # --- HTTP -----------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        _retried: bool = False,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if signed:
            hdrs["Authorization"] = sign_request(
                self.key, self.device, method, self._path_prefix + path, body, self._now()
            )
        try:
            response = await self._http.request(method, path, content=body, headers=hdrs)
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
        if response.status_code in (429, 503) or response.status_code >= 500:
            raise RetryLater(
                f"the central API answered {response.status_code}; will retry",
                _retry_after(response),
            )
        if response.status_code == 401:
            if signed and not _retried and self._learn_api_clock(response):
                return await self._request(
                    method, path, body=body, headers=headers, signed=signed, _retried=True
                )
            raise _auth_refused(response)
        if response.status_code == 403 and (retired := _device_retired(response)) is not None:
            raise retired
        return response

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
            if response.json().get("error") != "clock_skew":
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
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiProtocolError(
                f"the central API answered {response.status_code} with something that is not "
                "JSON; nothing was retired. Will retry."
            ) from exc

    # --- records and blobs ----------------------------------------------------------------
    async def _upload_blob(self, sha: str) -> None:
        path = self.outbox.blob_path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.error(
                "sealed photo %s.. is missing on disk; its record is sent without it", sha[:8]
            )
            self.outbox.mark_blob_uploaded(sha)
            return
        response = await self._request(
            "PUT",
            f"/v1/blobs/{sha}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code not in (200, 201):
            raise ApiProtocolError(
                f"the central API refused a sealed photo ({response.status_code})"
            )
        self.outbox.mark_blob_uploaded(sha)

    async def upload_deferred_blobs(self) -> int:
        """Upload every sealed photo still marked not uploaded (deferred by a 401 after a key
        rotation; see the module docstring). Returns how many went up; raises a
        :class:`SyncError` (AuthRefused while the API still refuses the key) and keeps the
        rest for the next try. A file whose records are all resolved is deleted at once."""
        waiting = self.outbox.blobs_not_uploaded()
        for sha in waiting:
            await self._upload_blob(sha)
        return len(waiting)

    async def push_batch(self, batch: list[Pending]) -> BatchOutcome:
        """Upload one batch (its blobs first); retire or park per the server's answer. A
        photo refused with 401 is kept for :meth:`upload_deferred_blobs` and the records go
        up anyway: they may carry the key_rotation that makes the API accept the key."""
        refused = False
        for item in batch:
            if item.photo and not refused and not self.outbox.blob_uploaded(item.photo):
                try:
                    await self._upload_blob(item.photo)
                except AuthRefused as exc:
                    refused = True
                    log.warning("sync: photo upload refused, sending the records first: %s",
                                exc.message)  # fmt: skip
        body = json.dumps({"records": [p.compact for p in batch]}).encode()
        response = await self._request(
            "POST",
            f"/v1/devices/{self.device}/records",
            body=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": batch_key(self.device, batch),
            },
        )
        if response.status_code != 200:
            detail = self._json(response) if response.content else {}
            raise ApiProtocolError(
                f"the central API refused the batch ({response.status_code}: "
                f"{detail.get('error', '?') if isinstance(detail, dict) else '?'}); will retry"
            )
        answer = self._json(response)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(batch):
            raise ApiProtocolError(
                "the central API's answer does not list one result per record; nothing retired"
            )
        acked: list[int] = []
        parked: list[tuple[int, str]] = []
        for index, (item, result) in enumerate(zip(batch, results, strict=True)):
            if (
                not isinstance(result, dict)
                or result.get("index", index) != index
                or result.get("seq") != item.seq
                or result.get("id") != item.id
            ):
                raise ApiProtocolError(
                    "the central API's answer does not match the records sent; nothing retired"
                )
            status = result.get("status")
            if status in ("accepted", "duplicate"):
                acked.append(item.seq)
            elif status == "rejected":
                parked.append((item.seq, str(result.get("reason") or "unspecified")))
            else:
                raise ApiProtocolError(f"unknown record status {status!r}; nothing retired")
        self.outbox.resolve(batch[-1].seq, dict(parked))
        self.outbox.write_anchor_hint()
        dup = sum(1 for r in results if r.get("status") == "duplicate")
        return BatchOutcome(accepted=len(acked) - dup, duplicate=dup, rejected=len(parked))

    async def drain(self) -> int:
        """Push batches until the outbox has nothing pending, then any deferred photos;
        return records retired or parked. Raises a :class:`SyncError` on the first failure
        (nothing lost)."""
        done = 0
        while True:
            batch = self.outbox.pending(self.api.batch_size)
            if not batch:
                await self.upload_deferred_blobs()
                return done
            outcome = await self.push_batch(batch)
            done += outcome.accepted + outcome.duplicate + outcome.rejected

    # --- roster and heartbeat -------------------------------------------------------------
    async def fetch_roster(self) -> bool:
        """Download the roster if it changed (ETag). Returns True when a new one was stored."""
        if self.roster_path is None:
            return False
        etag_path = self.roster_path.with_suffix(".etag")
        headers = {}
        if etag_path.exists() and self.roster_path.exists():
            headers["If-None-Match"] = etag_path.read_text().strip()
        response = await self._request("GET", f"/v1/devices/{self.device}/roster", headers=headers)
        if response.status_code == 304:
            return False
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise ApiProtocolError(f"roster download failed ({response.status_code})")
        self._json(response)  # must at least be JSON before it replaces a good roster
        write_private_file(self.roster_path, response.content)
        etag = response.headers.get("ETag")
        if etag:
            write_private_file(etag_path, etag.encode())
        return True

    async def heartbeat(self) -> None:
        stats = self.outbox.stats()
        body = {
            "queue_depth": stats.depth,
            "oldest_unsent_s": stats.oldest_unsent_s,
            "parked": stats.parked,
            "last_seq": stats.last_seq,
            "app": self.outbox.app_version,
            "clock_synced": self.clock.synced(),
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
    def backoff_s(self, retry_after: float | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**failures)], at least Retry-After."""
        ceiling: float = min(
            self.api.backoff_cap_s, self.api.backoff_base_s * 2 ** min(self.failures, 30)
        )
        delay = self._rng() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.api.backoff_cap_s))
        return delay

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set: drain, roster, heartbeat, back off on failure."""
        next_heartbeat = 0.0
        next_roster = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.wakeup.clear()
            delay = IDLE_POLL_S
            try:
                await self.drain()
                now = loop.time()
                if now >= next_roster:
                    await self.fetch_roster()
                    next_roster = now + self.api.roster_s
                if now >= next_heartbeat:
                    await self.heartbeat()
                    next_heartbeat = now + self.api.heartbeat_s
                self.failures = 0
                self.last_error = None
                self.last_success_wall = self.clock.wall()
            except SyncError as exc:
                self.last_error = exc
                self.failures += 1
                delay = self.backoff_s(exc.retry_after if isinstance(exc, RetryLater) else None)
                log.warning("sync: %s (retry in %.1f s)", exc.message, delay)
                if self.wakeup.is_set():
                    self.wakeup.clear()  # a new record must not defeat the backoff
            if stop.is_set():
                break
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.wakeup.wait()),
            ]
            if self.failures:
                waiters.pop()  # while backing off, only stop cuts the wait short
            _done, pending = await asyncio.wait(
                waiters, timeout=delay, return_when="FIRST_COMPLETED"
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
