"""The sync client's decisions, against httpx.MockTransport (a seam the project owns).

The end-to-end sync path against the real reference API over TLS is in tests/integration/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from daemon.clock import FakeClock
from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable
from daemon.outbox import Outbox
from daemon.sync import BatchRefused, RetryLater, SyncClient, batch_key
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
        top = max(r["seq"] for r in results)  # an honest API holds what it took
        return httpx.Response(200, json={"results": results, "last_seq": top, "gaps": []})

    return handler


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


# --- a batch refused as a whole: split to find the record, park it, let the rest flow --------


def _records_of(request: httpx.Request) -> list[dict[str, object]]:
    from daemon.records import decode_unverified

    return [decode_unverified(c)[1] for c in json.loads(request.content)["records"]]


def _refusing(
    bad: set[int], status: int = 422, error: str = "schema"
) -> tuple[Callable[[httpx.Request], httpx.Response], list[list[int]]]:
    """A records endpoint that refuses, as a whole, any batch holding a seq in ``bad`` (as an
    API that validates the batch before answering per record would). Returns it and the seqs
    of each batch it was sent."""
    sent: list[list[int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        payloads = _records_of(request)
        sent.append([int(p["seq"]) for p in payloads])  # type: ignore[call-overload]
        if bad & set(sent[-1]) or not bad:
            return httpx.Response(status, json={"error": error, "detail": "refused"})
        results = [
            {"index": i, "seq": p["seq"], "id": p["id"], "status": "accepted"}
            for i, p in enumerate(payloads)
        ]
        top = max(int(p["seq"]) for p in payloads)  # type: ignore[call-overload]
        return httpx.Response(200, json={"results": results, "last_seq": top, "gaps": []})

    return handler, sent


async def test_a_refused_batch_is_split_and_only_the_bad_record_is_parked(outbox: Outbox) -> None:
    handler, sent = _refusing({3})
    client = _client(outbox, handler)
    assert await client.drain() == 5
    assert outbox.parked() == [(3, "checkin", "refused_alone:422:schema")]
    assert outbox.stats().depth == 0
    # [1,2,3] refused; [1] taken; [2,3] refused; [2] taken; [3] refused alone; then [4,5]
    assert sent == [[1, 2, 3], [1], [2, 3], [2], [3], [4, 5]]
    await client.aclose()


async def test_splitting_a_large_batch_costs_a_few_requests_per_bad_record(
    tmp_path: Path,
) -> None:
    ob = open_outbox(tmp_path)
    for i in range(64):
        ob.append("checkin", synthetic_checkin(i))
    handler, sent = _refusing({7, 50})
    client = SyncClient(ob, ApiConfig(url="https://api.test/", batch_size=64), make_key(),
                        clock=FakeClock(), transport=httpx.MockTransport(handler))  # fmt: skip
    assert await client.drain() == 64
    assert [seq for seq, _t, _r in ob.parked()] == [7, 50]
    taken = sorted(s for batch in sent if not {7, 50} & set(batch) for s in batch)
    assert taken == [s for s in range(1, 65) if s not in (7, 50)]  # each once
    assert len(sent) <= 2 * 2 * 6 + 1  # about 2 log2(n) requests per bad record
    await client.aclose()


async def test_a_refusal_of_everything_parks_nothing(outbox: Outbox) -> None:
    """Every part refused alone too: an API or configuration fault, not a record's."""
    handler, sent = _refusing(set())
    client = _client(outbox, handler)
    with pytest.raises(BatchRefused, match="not one record's fault"):
        await client.drain()
    assert outbox.stats().depth == 5 and outbox.stats().parked == 0
    assert sent == [[1, 2, 3], [1], [2, 3], [2], [3]]
    await client.aclose()


async def test_a_refusal_from_an_outage_never_parks_a_record_the_api_takes_later(
    tmp_path: Path,
) -> None:
    """The API refuses everything for a while (nothing parked), then takes all but one bad
    record: the parts refused during the outage are asked again, so only the bad one is
    parked, not the good ones that shared a refused half with it back then."""
    from daemon.records import decode_unverified

    outage = [True]

    def handler(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        payloads = [decode_unverified(c)[1] for c in records]
        if outage[0] or any(p["seq"] == 8 for p in payloads):
            return httpx.Response(422, json={"error": "schema", "detail": "refused"})
        results = [{"index": i, "seq": p["seq"], "id": p["id"], "status": "accepted"}
                   for i, p in enumerate(payloads)]  # fmt: skip
        top = max(int(p["seq"]) for p in payloads)  # type: ignore[call-overload]
        return httpx.Response(200, json={"results": results, "last_seq": top, "gaps": []})

    client = _many(tmp_path, 8, handler)
    with pytest.raises(BatchRefused, match="not one record's fault"):
        await client.push_batch(client.outbox.pending(8))
    assert client.outbox.stats().parked == 0
    outage[0] = False
    await client.push_batch(client.outbox.pending(8))
    assert client.outbox.parked() == [(8, "checkin", "refused_alone:422:schema")]
    await client.aclose()


def _many(tmp_path: Path, n: int, handler: Callable[[httpx.Request], httpx.Response]) -> SyncClient:
    ob = open_outbox(tmp_path)
    for i in range(n):
        ob.append("checkin", synthetic_checkin(i))
    return SyncClient(ob, ApiConfig(url="https://api.test/", batch_size=n), make_key(),
                      clock=FakeClock(), transport=httpx.MockTransport(handler))  # fmt: skip


async def test_a_large_batch_refused_everywhere_costs_a_bounded_search(tmp_path: Path) -> None:
    handler, sent = _refusing(set())
    client = _many(tmp_path, 64, handler)
    with pytest.raises(BatchRefused):
        await client.drain()
    assert client.outbox.stats().parked == 0
    assert len(sent) <= 1 + 2 + 2 * 6  # the first, then 2 + 2 log2(64) more at most
    await client.aclose()


async def test_several_bad_records_at_the_front_are_all_found(tmp_path: Path) -> None:
    """Five of eight refused: the first search runs out of budget before the API takes
    anything, and parks nothing; the next carries on where it stopped and finds them."""
    handler, sent = _refusing({1, 2, 3, 4, 5})
    client = _many(tmp_path, 8, handler)
    with pytest.raises(BatchRefused):
        await client.drain()
    assert client.outbox.stats().parked == 0
    first = len(sent)
    assert await client.drain() == 8
    # no larger part is asked twice; a record refused on its own is asked once more before it
    # is parked (its old refusal may date from a time the API refused everything)
    second = sent[first:]
    again = [part for part in second[1:] if len(part) > 1 and part in sent[:first]]
    assert again == [] and len(second) <= first
    assert [seq for seq, _t, _r in client.outbox.parked()] == [1, 2, 3, 4, 5]
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, "wrong_device"), (404, "not_found"), (400, "clock_skew"), (422, "unknown_device")],
)
async def test_refusals_about_the_kiosk_or_the_api_are_not_split(
    outbox: Outbox, status: int, error: str
) -> None:
    handler, sent = _refusing({3}, status, error)
    client = _client(outbox, handler)
    with pytest.raises(BatchRefused):
        await client.drain()
    assert len(sent) == 1 and outbox.stats().parked == 0 and outbox.stats().depth == 5
    await client.aclose()


# --- a photo the API refuses -----------------------------------------------------------------


def _blob_api(
    answer: Callable[[httpx.Request], httpx.Response],
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """Blobs answered by ``answer``; records accepted; the paths asked for."""
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.startswith("/v1/blobs/"):
            return answer(request)
        return _answer(["accepted"])(request)

    return handler, paths


@pytest.fixture
def with_photo(tmp_path: Path) -> Outbox:
    ob = open_outbox(tmp_path)
    ob.append("checkin", synthetic_checkin(1), blob=b"sealed-photo" * 100)
    ob.append("checkin", synthetic_checkin(2))
    return ob


async def test_a_photo_the_api_calls_corrupt_is_lost_when_the_file_is(with_photo: Outbox) -> None:
    """The card rots the file between the kiosk's own check and the API's: the API's
    hash_mismatch is checked against the file again, and it is recorded as lost."""
    sha = str(with_photo.pending(1)[0].photo)

    def rot_then_refuse(_request: httpx.Request) -> httpx.Response:
        with_photo.blob_path(sha).write_bytes(b"rotted")
        return httpx.Response(422, json={"error": "hash_mismatch", "detail": "resend"})

    handler, _paths = _blob_api(rot_then_refuse)
    client = _client(with_photo, handler)
    assert await client.drain() == 3  # both check-ins, then the blob_lost record
    [lost] = [c for s, state, c in with_photo.all_compact() if s == 3]
    from daemon.records import decode_unverified

    payload = decode_unverified(lost)[1]
    assert payload["type"] == "blob_lost" and payload["flags"] == ["photo_lost"]
    assert payload["detail"] == {"blob": sha, "kind": "photo", "reason": "damaged", "seqs": [1]}
    assert with_photo.stats().blobs_pending == 0 and not with_photo.blob_path(sha).exists()
    await client.aclose()


async def test_a_photo_the_api_refuses_waits_without_holding_up_its_record(
    with_photo: Outbox,
) -> None:
    """A 4xx for a photo whose file is sound: the photo stays on the kiosk, retried with its
    own backoff, and its record goes up anyway."""
    handler, paths = _blob_api(
        lambda _r: httpx.Response(422, json={"error": "hash_mismatch", "detail": "resend"})
    )
    clock = FakeClock()
    client = SyncClient(with_photo, API, make_key(), clock=clock,
                        transport=httpx.MockTransport(handler), rng=lambda: 1.0)  # fmt: skip
    assert await client.drain() == 2
    st = with_photo.stats()
    assert (st.depth, st.parked, st.blobs_pending) == (0, 0, 1)
    sha = str(with_photo.blobs_not_uploaded()[0])
    assert with_photo.blob_path(sha).exists()
    puts = sum(p.startswith("/v1/blobs/") for p in paths)
    await client.drain()  # within its backoff: not tried again
    assert sum(p.startswith("/v1/blobs/") for p in paths) == puts
    clock.advance(API.backoff_cap_s)
    await client.drain()  # its backoff has run out: tried again
    assert sum(p.startswith("/v1/blobs/") for p in paths) == puts + 1
    await client.aclose()


# --- the loop: uploads, roster and heartbeat each on their own schedule ----------------------


async def test_heartbeat_and_roster_go_on_while_uploads_are_refused(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path)
    ob.append("checkin", synthetic_checkin(1))
    seen: dict[str, int] = {"records": 0, "roster": 0, "heartbeat": 0}
    beats: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        kind = request.url.path.rsplit("/", 1)[-1]
        seen[kind] += 1
        if kind == "records":  # refused forever, whatever is sent
            return httpx.Response(403, json={"error": "wrong_device", "detail": "no"})
        if kind == "heartbeat":
            beats.append(json.loads(request.content))
            return httpx.Response(200, json={"server_time": 0})
        return httpx.Response(404, json={"error": "no_roster", "detail": "none yet"})

    api = ApiConfig(url="https://api.test/", backoff_base_s=0.01, backoff_cap_s=0.02,
                    heartbeat_s=0.05, roster_s=0.05)  # fmt: skip
    client = SyncClient(ob, api, make_key(), clock=FakeClock(), roster_path=tmp_path / "r.json",
                        transport=httpx.MockTransport(handler))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if seen["heartbeat"] >= 3 and seen["roster"] >= 3:
            break
    stop.set()
    await task
    assert seen["heartbeat"] >= 3 and seen["roster"] >= 3 and seen["records"] >= 2
    assert beats[-1]["upload_error"] == "batch_refused" and beats[-1]["queue_depth"] == 1
    assert client.last_error is not None and client.last_error.reason == "batch_refused"
    assert ob.stats().parked == 0  # a refusal about the kiosk parks nothing
    await client.aclose()


async def test_uploads_go_on_while_the_heartbeat_fails(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path)
    accept = _answer(["accepted"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            return httpx.Response(400, json={"error": "schema", "detail": "no"})
        return accept(request)

    api = ApiConfig(url="https://api.test/", backoff_base_s=0.01, backoff_cap_s=0.02,
                    heartbeat_s=0.05)  # fmt: skip
    client = SyncClient(ob, api, make_key(), clock=FakeClock(),
                        transport=httpx.MockTransport(handler))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    for i in range(3):
        ob.append("checkin", synthetic_checkin(i))
        client.wake()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ob.stats().depth == 0:
                break
        assert ob.stats().depth == 0
    stop.set()
    await task
    assert client.failures == 0 and client.last_error is not None  # the heartbeat's
    await client.aclose()
