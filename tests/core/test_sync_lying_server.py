"""The sync client against a central API that lies or babbles, over httpx.MockTransport (the
seam the project owns). What it must never do: retire a record the API did not acknowledge,
park one for the API's own fault, hang, crash, or write what the API said into the journal.

The plain cases (garbage bodies, too few results, 5xx, Retry-After, batches refused whole)
are in test_sync_unit.py; these are the ones found by an adversarial audit.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from daemon.clock import FakeClock
from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable
from daemon.outbox import Outbox
from daemon.records import decode_unverified
from daemon.sync import MAX_ROSTER_BYTES, RetryLater, SyncClient
from tests.core.helpers import make_key, open_outbox, synthetic_checkin

Handler = Callable[[httpx.Request], httpx.Response]
API = ApiConfig(url="https://api.test/", batch_size=3, backoff_base_s=1.0, backoff_cap_s=60.0)


def _client(ob: Outbox, handler: Handler, api: ApiConfig = API, **kw: object) -> SyncClient:
    return SyncClient(ob, api, make_key(), clock=FakeClock(),
                      transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]  # fmt: skip


def _payloads(request: httpx.Request) -> list[dict[str, object]]:
    return [decode_unverified(c)[1] for c in json.loads(request.content)["records"]]


def _honest(request: httpx.Request) -> dict[str, object]:
    """What an API that keeps the contract answers when it takes every record sent."""
    payloads = _payloads(request)
    results = [{"index": i, "seq": p["seq"], "id": p["id"], "status": "accepted"}
               for i, p in enumerate(payloads)]  # fmt: skip
    return {"results": results, "last_seq": max(int(str(p["seq"])) for p in payloads), "gaps": []}


def _untouched(ob: Outbox) -> bool:
    st = ob.stats()
    return st.depth == 5 and st.parked == 0


# --- answers that never end, or are enormous -------------------------------------------------


async def _trickle(
    served: list[int], chunk: bytes = b" ", pause: float = 0.02
) -> AsyncIterator[bytes]:
    while True:  # an answer that never ends, a little at a time (each wait below the timeout)
        served.append(len(chunk))
        yield chunk
        await asyncio.sleep(pause)


async def test_an_answer_trickled_forever_gives_up_at_a_deadline_and_the_loop_goes_on(
    outbox: Outbox,
) -> None:
    """Before, only each wait was bounded: the records upload hung for ever and the roster and
    the heartbeat (same loop) were never sent again. Now the whole answer has a deadline
    (12 x timeout_s); nothing is retired and the heartbeat says why."""
    served: list[int] = []
    beats: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            beats.append(json.loads(request.content))
            return httpx.Response(200, json={"server_time": 0})
        return httpx.Response(200, content=_trickle(served))

    api = ApiConfig(url="https://api.test/", timeout_s=0.02, backoff_base_s=0.01,
                    backoff_cap_s=0.02, heartbeat_s=0.05)  # fmt: skip
    client = _client(outbox, handler, api)
    started = time.monotonic()
    with pytest.raises(ApiUnreachable, match="did not finish answering within"):
        await client.drain()
    assert time.monotonic() - started < 2.0 and _untouched(outbox)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if beats:
            break
    stop.set()
    await task
    assert beats and beats[0]["upload_error"] == "api_unreachable"
    assert _untouched(outbox)
    await client.aclose()


async def test_an_enormous_records_answer_is_not_read_and_retires_nothing(outbox: Outbox) -> None:
    served: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_trickle(served, b" " * 65536, pause=0))

    client = _client(outbox, handler)
    with pytest.raises(ApiProtocolError, match="larger than 1024 KiB"):
        await client.drain()
    assert sum(served) <= (1 << 20) + 65536  # stopped at the bound, not read to the end
    assert _untouched(outbox)
    await client.aclose()


async def test_an_enormous_error_page_still_counts_as_its_status(outbox: Outbox) -> None:
    """A proxy's 2 MiB 503 page is cut short, not refused: Retry-After is still honoured."""
    page = b"<html>" + b"x" * (2 << 20)
    client = _client(outbox, lambda _r: httpx.Response(503, content=page,
                                                       headers={"Retry-After": "7"}))  # fmt: skip
    with pytest.raises(RetryLater) as err:
        await client.drain()
    assert err.value.retry_after == 7 and _untouched(outbox)
    await client.aclose()


async def test_an_enormous_roster_is_refused_and_the_last_good_one_stays(
    outbox: Outbox, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.json"
    roster.write_text('{"last": "good"}')
    served: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_trickle(served, b" " * (1 << 20), pause=0),
                              headers={"ETag": '"huge"'})  # fmt: skip

    client = _client(outbox, handler, roster_path=roster)
    assert await client.fetch_roster() is False
    assert sum(served) <= MAX_ROSTER_BYTES + (1 << 20)
    assert roster.read_text() == '{"last": "good"}' and not roster.with_suffix(".etag").exists()
    refused = client.roster_report()["roster_refused"]
    assert refused["reason"] == "too_large" and refused["etag"] == '"huge"'
    await client.aclose()


async def test_an_answer_whose_content_encoding_lies_is_not_a_crash(outbox: Outbox) -> None:
    """``Content-Encoding: gzip`` on a body that is not: before, httpx's DecodingError went
    straight through the loop (it is not a network error) and stopped kiosk-sync."""
    client = _client(outbox, lambda _r: httpx.Response(
        200, content=b"not gzip", headers={"Content-Encoding": "gzip"}))  # fmt: skip
    with pytest.raises(ApiProtocolError, match="could not be decoded"):
        await client.drain()
    assert _untouched(outbox)
    await client.aclose()


# --- JSON that Python's parser will not take --------------------------------------------------

UNPARSABLE = {
    "nested": b"[" * 100_000,  # RecursionError, not a ValueError
    "huge-int": b'{"results": [], "last_seq": ' + b"9" * 5000 + b', "gaps": []}',  # int limit
}


@pytest.mark.parametrize("body", UNPARSABLE.values(), ids=UNPARSABLE.keys())
async def test_json_the_parser_will_not_take_is_garbage_not_a_crash(
    outbox: Outbox, tmp_path: Path, body: bytes
) -> None:
    """Before, the records answer's RecursionError (or the integer-length ValueError) went
    through the loop and stopped kiosk-sync, to be restarted into the same answer."""
    beats: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/heartbeat"):
            beats.append(json.loads(request.content))
            return httpx.Response(200, content=body)
        return httpx.Response(200, content=body)

    api = ApiConfig(url="https://api.test/", backoff_base_s=0.01, backoff_cap_s=0.02,
                    heartbeat_s=0.05, roster_s=0.05)  # fmt: skip
    client = _client(outbox, handler, api, roster_path=tmp_path / "roster.json")
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if len(beats) >= 2 or task.done():
            break
    stop.set()
    await task  # it did not die
    assert len(beats) >= 2 and beats[-1]["upload_error"] == "api_protocol"
    assert beats[-1]["roster_refused"]["reason"] == "not_json"  # type: ignore[index]
    assert _untouched(outbox)
    await client.aclose()


@pytest.mark.parametrize("status", [401, 403, 422])
async def test_an_error_answer_the_parser_will_not_take_is_still_its_status(
    outbox: Outbox, status: int
) -> None:
    client = _client(outbox, lambda _r: httpx.Response(status, content=UNPARSABLE["nested"]))
    with pytest.raises(ApiProtocolError) as err:
        await client.drain()
    assert err.value.reason == {401: "api_auth", 403: "batch_refused", 422: "batch_refused"}[status]
    assert _untouched(outbox)
    await client.aclose()


# --- what the API says is never trusted into the journal, the outbox or a heartbeat ---------

SMUGGLED = "CR-000123 did not attend\nsync: FAKE LOG LINE " + "x" * 100_000


@pytest.mark.parametrize(
    ("reason", "parked_as"),
    [
        ("schema", "schema"),
        (None, "unspecified"),
        (SMUGGLED, "unreadable_reason"),
        ({"why": ["CR-000123"]}, "unreadable_reason"),
        (12, "unreadable_reason"),
    ],
    ids=["code", "none", "free-text", "object", "number"],
)
async def test_a_rejection_reason_is_kept_only_when_it_is_a_code(
    outbox: Outbox, caplog: pytest.LogCaptureFixture, reason: object, parked_as: str
) -> None:
    """Before, the reason was parked, logged and sent in every heartbeat as the API wrote it:
    a megabyte, a forged journal line, a case reference."""

    def handler(request: httpx.Request) -> httpx.Response:
        answer = _honest(request)
        answer["results"][0].update(status="rejected", reason=reason)  # type: ignore[index]
        return httpx.Response(200, json=answer)

    client = _client(outbox, handler)
    with caplog.at_level("DEBUG"):
        assert await client.drain() == 5
    assert outbox.parked() == [(1, "checkin", parked_as), (4, "checkin", parked_as)]
    assert outbox.parked_reasons() == {parked_as: 2}
    assert "CR-000123" not in caplog.text and "FAKE" not in caplog.text
    await client.aclose()


async def test_error_codes_and_details_from_the_api_are_never_logged_raw(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    answers = iter([
        httpx.Response(401, json={"error": SMUGGLED}),
        httpx.Response(403, json={"error": "device_retired", "detail": "retired.\nFAKE LOG LINE"}),
        httpx.Response(404, json={"error": "CR-000123"}),
    ])  # fmt: skip
    client = _client(outbox, lambda _r: next(answers))
    messages = []
    for _ in range(3):
        with pytest.raises(ApiProtocolError) as err:
            await client.drain()
        messages.append(err.value.message)
    assert "CR-000123" not in "".join(messages) and "\n" not in "".join(messages)
    assert "(401 unauthorised)" in messages[0]
    assert messages[1] == "retired. FAKE LOG LINE (403 device_retired)"
    assert "(404: ?)" in messages[2]
    assert _untouched(outbox)
    await client.aclose()


# --- acknowledgements that do not hold up ---------------------------------------------------


def _lie(change: Callable[[dict[str, object]], None]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = _honest(request)
        change(answer)
        return httpx.Response(200, json=answer)

    return handler


def _results(answer: dict[str, object]) -> list[dict[str, object]]:
    return answer["results"]  # type: ignore[return-value]


LIES: dict[str, Callable[[dict[str, object]], None]] = {
    # "duplicate" for records the API says in the same answer it does not hold
    "duplicate-never-had": lambda a: (
        [r.update(status="duplicate") for r in _results(a)], a.update(last_seq=0)),
    "accepted-in-a-gap": lambda a: a.update(gaps=[[1, 2]]),
    "accepted-in-overlapping-gaps": lambda a: a.update(gaps=[[7, 9], [1, 8], [2, 2]]),
    "accepted-in-one-of-many-gaps": lambda a: a.update(
        gaps=[[n, n] for n in range(60_000, 0, -2)], last_seq=10**6),
    "accepted-above-last-seq": lambda a: a.update(last_seq=int(str(a["last_seq"])) - 1),
    # the right record by a value that only compares equal
    "seq-true-for-1": lambda a: _results(a)[0].update(seq=True),
    "seq-as-float": lambda a: [r.update(seq=float(str(r["seq"]))) for r in _results(a)],
    "index-as-string": lambda a: [r.update(index=str(r["index"])) for r in _results(a)],
    # the contract's chain report missing or of the wrong shape
    "no-last-seq": lambda a: a.pop("last_seq"),
    "last-seq-string": lambda a: a.update(last_seq=str(a["last_seq"])),
    "last-seq-negative": lambda a: a.update(last_seq=-1),
    "gaps-null": lambda a: a.update(gaps=None),
    "gap-backwards": lambda a: a.update(gaps=[[9, 7]]),
    "gap-of-strings": lambda a: a.update(gaps=[["7", "9"]]),
    # results for the right records, but not one per record in order
    "out-of-order": lambda a: _results(a).reverse(),
    "a-result-twice": lambda a: _results(a).__setitem__(2, _results(a)[1]),
    "another-id-for-the-seq": lambda a: _results(a)[1].update(
        id="01900000-0000-7000-8000-000000000000"),
}  # fmt: skip


@pytest.mark.parametrize("change", LIES.values(), ids=LIES.keys())
async def test_an_acknowledgement_that_does_not_hold_up_retires_nothing(
    outbox: Outbox, change: Callable[[dict[str, object]], None]
) -> None:
    client = _client(outbox, _lie(change))
    with pytest.raises(ApiProtocolError, match="nothing retired"):
        await client.drain()
    assert _untouched(outbox)
    await client.aclose()


async def test_a_gap_where_a_rejected_record_would_be_is_no_lie(outbox: Outbox) -> None:
    """The API never stores a record it rejects, so its seq is a gap from then on: that is
    the contract, and it parks the record and retires the rest as usual."""

    def reject_first(answer: dict[str, object]) -> None:
        first = _results(answer)[0]
        if first["seq"] == 1:
            first.update(status="rejected", reason="bad_signature")
        answer["gaps"] = [[1, 1]]

    client = _client(outbox, _lie(reject_first))
    assert await client.drain() == 5
    assert outbox.parked() == [(1, "checkin", "bad_signature")] and outbox.stats().depth == 0
    await client.aclose()


# --- the roster ------------------------------------------------------------------------------


def _roster_bytes(*people: str) -> bytes:
    from hil.refapi.testing import roster_doc

    return json.dumps(roster_doc(*people)).encode()


async def test_a_304_to_a_request_that_named_no_roster_is_not_taken_as_up_to_date(
    outbox: Outbox, tmp_path: Path
) -> None:
    """A kiosk with no roster (or a refused one) was told "not modified" and believed it:
    it went on with none, and the refusal it was reporting was cleared."""
    client = _client(outbox, lambda _r: httpx.Response(304), roster_path=tmp_path / "roster.json")
    client.roster_refused = {"reason": "roster_invalid", "field": "roster.dob_salt"}
    with pytest.raises(ApiProtocolError, match="304 Not Modified to a roster request that named"):
        await client.fetch_roster()
    assert client.roster_report()["roster_refused"]["field"] == "roster.dob_salt"
    assert not (tmp_path / "roster.json").exists()
    await client.aclose()


async def test_an_etag_that_cannot_be_sent_back_is_not_kept_and_stops_nothing(
    outbox: Outbox, tmp_path: Path
) -> None:
    """Before, an ETag with a non-ASCII byte was stored and then sent in If-None-Match,
    where httpx's UnicodeEncodeError went through the loop and stopped kiosk-sync."""
    body = _roster_bytes("CR-000001")
    offered: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offered.append(request.headers.get("If-None-Match"))
        return httpx.Response(200, content=body, headers=[(b"ETag", b'"caf\xe9"')])

    roster = tmp_path / "roster.json"
    client = _client(outbox, handler, roster_path=roster)
    assert await client.fetch_roster() is True
    assert await client.fetch_roster() is False  # the same roster again, nothing rewritten
    assert roster.read_bytes() == body and offered == [None, None]
    assert not roster.with_suffix(".etag").exists()
    await client.aclose()


async def test_an_etag_that_changes_on_the_same_roster_does_not_rewrite_it(
    outbox: Outbox, tmp_path: Path
) -> None:
    """An API whose ETag changes every time (a timestamp) without a new roster: before, the
    kiosk rewrote the whole file every roster_s (SD card wear) and reloaded it."""
    body = _roster_bytes("CR-000001", "CR-000002")
    tags = iter(f'"v{n}"' for n in range(10))
    roster = tmp_path / "roster.json"

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"ETag": next(tags)})

    client = _client(outbox, handler, roster_path=roster)
    assert await client.fetch_roster() is True
    inode = roster.stat().st_ino  # the file is replaced by a rename when it is written
    assert await client.fetch_roster() is False
    assert await client.fetch_roster() is False
    assert roster.stat().st_ino == inode and roster.read_bytes() == body
    assert roster.with_suffix(".etag").read_text() == '"v2"'  # the API's latest ETag is kept
    await client.aclose()


# --- an API that acknowledged records, then reports them missing ----------------------------


class _Api:
    """A records endpoint that keeps what it takes and answers as the contract says, with
    ways to forget (a restore from an old backup), to keep forgetting, or to reject."""

    def __init__(self) -> None:
        self.held: dict[int, str] = {}
        self.forget: set[int] = set()  # answered "accepted", never kept
        self.reject: set[int] = set()
        self.sent: list[list[int]] = []
        self.keys: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        compacts = json.loads(request.content)["records"]
        payloads = _payloads(request)
        self.sent.append([int(str(p["seq"])) for p in payloads])
        self.keys.append(request.headers["Idempotency-Key"])
        results = []
        for i, (compact, p) in enumerate(zip(compacts, payloads, strict=True)):
            seq = int(str(p["seq"]))
            result = {"index": i, "seq": seq, "id": p["id"], "status": "accepted"}
            if seq in self.reject:
                result.update(status="rejected", reason="prev_mismatch")
            elif seq in self.held:
                result["status"] = "duplicate"
            elif seq not in self.forget:
                self.held[seq] = compact
            results.append(result)
        top = max(self.held, default=0)
        gaps, expected = [], 1
        for seq in sorted(self.held):
            if seq > expected:
                gaps.append([expected, seq - 1])
            expected = seq + 1
        return httpx.Response(200, json={"results": results, "last_seq": top, "gaps": gaps})


async def test_records_the_api_lost_after_acknowledging_them_are_sent_again(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The API is restored from a backup that lacks seqs 2-4, which this kiosk had retired.
    Before, the gap in its next answer was read by nobody and the API never got them back,
    though the kiosk still held them (keep_acked_days)."""
    api = _Api()
    client = _client(outbox, api.handler)
    assert await client.drain() == 5
    for seq in (2, 3, 4):
        del api.held[seq]
    outbox.append("checkin", synthetic_checkin(6))
    with caplog.at_level("WARNING"):
        assert await client.drain() == 1
    assert sorted(api.held) == [1, 2, 3, 4, 5, 6]
    assert api.sent[-1] == [2, 3, 4] and api.keys[-1].startswith("again:")
    assert "acknowledged earlier as missing (seq 2 to 4)" in caplog.text
    assert outbox.stats().depth == 0 and outbox.parked() == []
    await client.drain()  # nothing more to say: nothing sent
    assert len(api.sent) == 4
    await client.aclose()


async def test_an_api_that_keeps_losing_them_gets_them_once_not_for_ever(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """It answers "accepted" to 2-4 sent again but goes on reporting them missing: its answer
    contradicts itself (logged), and they are not sent again while kiosk-sync runs, however
    many later answers report the gap. New records go on flowing meanwhile."""
    api = _Api()
    client = _client(outbox, api.handler)
    assert await client.drain() == 5
    for seq in (2, 3, 4):
        del api.held[seq]
    api.forget = {2, 3, 4}
    for n in range(6, 10):
        outbox.append("checkin", synthetic_checkin(n))
        assert await client.drain() == 1
    assert sum(batch == [2, 3, 4] for batch in api.sent) == 1
    assert "records sent again were not taken" in caplog.text
    assert sorted(api.held) == [1, 5, 6, 7, 8, 9] and outbox.stats().depth == 0
    await client.aclose()


async def test_a_record_sent_again_and_rejected_is_parked_not_pruned(tmp_path: Path) -> None:
    clock = FakeClock()
    outbox = open_outbox(tmp_path, clock=clock)
    for i in range(5):
        outbox.append("checkin", synthetic_checkin(i))
    api = _Api()
    client = _client(outbox, api.handler)
    assert await client.drain() == 5
    del api.held[3]
    api.reject = {3}
    outbox.append("checkin", synthetic_checkin(6))
    assert await client.drain() == 1
    assert outbox.parked() == [(3, "checkin", "prev_mismatch")]
    assert outbox.stats().parked == 1 and outbox.stats().depth == 0
    clock.advance(60)
    assert outbox.prune_acked(1) == 4  # 1, 2, 4, 5; not 3 (parked) nor 6 (the chain head)
    assert [seq for seq, _state, _c in outbox.all_compact()] == [3, 6]
    await client.aclose()


async def test_a_gap_where_the_kiosk_holds_nothing_it_retired_sends_nothing(
    outbox: Outbox,
) -> None:
    """Gaps over records the kiosk never had (a salvaged outbox), over parked records, or past
    anything it holds (a lying [1, 10**30]) send nothing again."""
    api = _Api()
    api.reject = {2}
    client = _client(outbox, api.handler)
    assert await client.drain() == 5
    assert [seq for seq, *_ in outbox.parked()] == [2]
    client._claimed = [(1, 10**30), (7, 2**70)]
    api.held.clear()
    assert await client.resend_missing() == 4  # what it holds, once, in batches of 3
    assert api.sent[-2:] == [[1, 3, 4], [5]]
    client._claimed = [(1, 10**30)]
    assert await client.resend_missing() == 0
    assert [p.seq for p in outbox.retired_in([(5, 5), (3, 4), (1, 1), (4, 9)])] == [1, 3, 4, 5]
    assert [p.seq for p in outbox.retired_in([(n, n) for n in range(1, 60_000)])] == [1, 3, 4, 5]
    await client.aclose()


async def test_a_photo_answer_that_cannot_be_read_holds_up_no_record(tmp_path: Path) -> None:
    """With answers bounded, a blob PUT answered 200 with megabytes is not read: the photo
    waits with its own backoff (not marked sent), and the records still go up."""
    ob = open_outbox(tmp_path)
    ob.append("checkin", synthetic_checkin(1), blob=b"sealed-photo" * 100)
    ob.append("checkin", synthetic_checkin(2))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/blobs/"):
            return httpx.Response(200, content=b" " * (2 << 20))
        return httpx.Response(200, json=_honest(request))

    client = _client(ob, handler)
    assert await client.drain() == 2
    st = ob.stats()
    assert (st.depth, st.parked, st.blobs_pending) == (0, 0, 1)
    await client.aclose()


# --- records parked by an API's fault, sent again on an engineer's request --------------------


def _rejecting(reason: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        payloads = _payloads(request)
        results = [{"index": i, "seq": p["seq"], "id": p["id"], "status": "rejected",
                    "reason": reason} for i, p in enumerate(payloads)]  # fmt: skip
        first = int(str(payloads[0]["seq"]))
        return httpx.Response(200, json={"results": results, "last_seq": first - 1, "gaps": []})

    return handler


async def test_parked_records_go_again_only_when_asked_and_each_answer_is_kept(
    outbox: Outbox,
) -> None:
    """An API that rejects everything (its own fault) parks every record: nothing is sent
    again by itself. Asked, kiosk-sync's drain sends them; the API, still faulty, rejects
    them again with another reason (kept); an answer it cannot read leaves them asked
    without a loop; fixed, it takes them and they are no longer parked."""
    sent: list[int] = []

    def counting(handler: Handler) -> Handler:
        def wrapped(request: httpx.Request) -> httpx.Response:
            sent.extend(int(str(p["seq"])) for p in _payloads(request))
            return handler(request)

        return wrapped

    client = _client(outbox, counting(_rejecting("schema_invalid")))
    assert await client.drain() == 5
    assert {r for _s, _t, r in outbox.parked()} == {"schema_invalid"}
    sent.clear()
    assert await client.drain() == 0 and sent == []  # parked: never by itself
    await client.aclose()

    assert outbox.ask_again([2, 4]) == [2, 4]
    assert outbox.ask_again([2, 4]) == []  # already asked: not twice
    client = _client(outbox, counting(_rejecting("bad_signature")))
    await client.drain()
    assert sent == [2, 4]
    assert dict((s, r) for s, _t, r in outbox.parked()) == {
        1: "schema_invalid", 2: "bad_signature", 3: "schema_invalid", 4: "bad_signature",
        5: "schema_invalid"}  # fmt: skip
    await client.aclose()

    assert outbox.ask_again(reason="schema_invalid") == [1, 3, 5]
    sent.clear()
    client = _client(outbox, counting(lambda r: httpx.Response(200, text="<html>oops")))
    await client.drain()
    await client.drain()
    assert sent == [1, 3, 5]  # once in this run: an unreadable answer is not a loop
    assert outbox.stats().parked == 5  # and nothing was taken for done
    await client.aclose()

    sent.clear()
    client = _client(outbox, counting(lambda r: httpx.Response(200, json=_honest(r))))
    await client.drain()
    assert sent == [1, 3, 5]
    assert [s for s, _t, _r in outbox.parked()] == [2, 4]  # not asked again: still parked
    await client.aclose()
