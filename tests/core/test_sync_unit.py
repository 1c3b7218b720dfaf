"""The sync client's decisions, against httpx.MockTransport (a seam the project owns).

The end-to-end sync path against the real reference API over TLS is in tests/integration/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from daemon.clock import FakeClock
from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable
from daemon.outbox import Outbox
from daemon.sync import RetryLater, SyncClient, batch_key
from tests.core.helpers import make_key, open_outbox, synthetic_checkin

API = ApiConfig(url="https://api.test/", batch_size=3, backoff_base_s=1.0, backoff_cap_s=60.0)


def _client(
    ob: Outbox, handler: Callable[[httpx.Request], httpx.Response], **kw: object
) -> SyncClient:
    return SyncClient(
        ob,
        API,
        make_key(),
        clock=FakeClock(),
        transport=httpx.MockTransport(handler),
        **kw,  # type: ignore[arg-type]
    )


def _answer(statuses: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        results = []
        for i, compact in enumerate(records):
            from daemon.records import decode_unverified

            _h, p, _s, _g = decode_unverified(compact)
            st = statuses[(p["seq"] - 1) % len(statuses)]
            r = {"index": i, "seq": p["seq"], "id": p["id"], "status": st}
            if st == "rejected":
                r["reason"] = "schema"
            results.append(r)
        return httpx.Response(200, json={"results": results, "last_seq": 0, "gaps": []})

    return handler


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    ob = open_outbox(tmp_path)
    for i in range(5):
        ob.append("checkin", synthetic_checkin(i))
    return ob


async def test_accepted_and_duplicate_retire_rejected_parks(outbox: Outbox) -> None:
    client = _client(outbox, _answer(["accepted", "duplicate", "rejected"]))
    assert await client.drain() == 5
    assert outbox.stats().depth == 0
    assert outbox.parked() == [(3, "checkin", "schema")]
    await client.aclose()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, json={"results": []}),
        httpx.Response(
            200, json={"results": [{"index": 0, "seq": 99, "id": "x", "status": "accepted"}] * 3}
        ),
        httpx.Response(200, json={"results": "yes"}),
        httpx.Response(400, json={"error": "schema"}),
    ],
    ids=["html", "too-few", "wrong-records", "not-a-list", "400"],
)
async def test_a_server_that_lies_or_babbles_retires_nothing(
    outbox: Outbox, response: httpx.Response
) -> None:
    client = _client(outbox, lambda _r: response)
    with pytest.raises(ApiProtocolError):
        await client.drain()
    assert outbox.stats().depth == 5 and outbox.stats().parked == 0
    await client.aclose()


async def test_unknown_status_retires_nothing(outbox: Outbox) -> None:
    client = _client(outbox, _answer(["accepted", "maybe"]))
    with pytest.raises(ApiProtocolError, match="unknown record status"):
        await client.drain()
    assert outbox.stats().depth == 5
    await client.aclose()


async def test_503_with_retry_after_is_honoured(outbox: Outbox) -> None:
    client = _client(
        outbox, lambda _r: httpx.Response(503, headers={"Retry-After": "42"}), rng=lambda: 0.0
    )
    with pytest.raises(RetryLater) as err:
        await client.drain()
    assert err.value.retry_after == 42
    client.failures = 1
    assert client.backoff_s(err.value.retry_after) == 42
    await client.aclose()


async def test_dead_network_is_unreachable_not_a_crash(outbox: Outbox) -> None:
    def refuse(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = _client(outbox, refuse)
    with pytest.raises(ApiUnreachable, match="kept safely"):
        await client.drain()
    assert outbox.stats().depth == 5
    await client.aclose()


def test_backoff_is_full_jitter_with_a_cap(outbox: Outbox) -> None:
    client = _client(outbox, _answer(["accepted"]), rng=lambda: 1.0)
    ceilings = []
    for failures in range(12):
        client.failures = failures
        ceilings.append(client.backoff_s())
    assert ceilings[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(ceilings) == 60.0
    client.failures = 3
    client._rng = lambda: 0.25
    assert client.backoff_s() == 2.0


async def test_batches_carry_a_stable_idempotency_key(outbox: Outbox) -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        assert request.headers["Authorization"].startswith("KioskSig ")
        return httpx.Response(500)

    client = _client(outbox, handler)
    for _ in range(2):
        with pytest.raises(RetryLater):
            await client.drain()
    assert keys[0] == keys[1] == batch_key(outbox.device, outbox.pending(3))
    await client.aclose()
