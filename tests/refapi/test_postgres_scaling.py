"""Several API processes on one PostgreSQL database, as a real deployment scales the central
API: two real servers (uvicorn, HTTPS on loopback) share the database; a kiosk's batches,
resent and overlapping, arrive at both at once. Every record is stored exactly once, the chain
head is right, and the answers agree — the per-device row lock serialises a device's batches
across processes, and batches of different devices do not wait for each other."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hil.refapi.server import RefApi
from hil.refapi.testing import SimDevice
from tests.refapi.test_server import _client, _enrolled, _push


@pytest.fixture
def two_servers(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[RefApi, RefApi]]:
    first = RefApi(tmp_path / "api", database=pg_dsn)
    second = RefApi(tmp_path / "api", database=pg_dsn)  # same PKI and admin token, own port
    first.start()
    try:
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _at_once(*calls: tuple[RefApi, SimDevice, list[str], str]) -> list[httpx.Response]:
    """Send every batch at the same moment, each to its server, from its own thread."""
    answers: list[httpx.Response | None] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def send(i: int, api: RefApi, dev: SimDevice, records: list[str], key: str) -> None:
        with _client(api, timeout=30) as c:
            start.wait()
            answers[i] = _push(c, dev, records, key=key)

    threads = [threading.Thread(target=send, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def test_resent_and_overlapping_batches_at_two_servers_are_stored_once(
    two_servers: tuple[RefApi, RefApi],
) -> None:
    a, b = two_servers
    with _client(a) as c:
        dev = _enrolled(a, c)
        other = _enrolled(a, c)
    chain = dev.records(300)
    others = other.records(100)
    # a retry with the same Idempotency-Key reaching the other server at the same moment:
    # one stores, the other replays its answer
    got = _at_once((a, dev, chain[:100], "same"), (b, dev, chain[:100], "same"))
    assert [r.status_code for r in got] == [200, 200], [r.text for r in got]
    assert got[0].json() == got[1].json()
    assert [r["status"] for r in got[0].json()["results"]] == ["accepted"] * 100
    # the same records under two keys (a resend after a lost answer) at both at once: stored
    # by one, reported as duplicates by the other, whichever wins the lock
    got = _at_once((a, dev, chain[:120], "again-a"), (b, dev, chain[:120], "again-b"))
    statuses = sorted(tuple(r["status"] for r in answer.json()["results"][100:]) for answer in got)
    assert statuses == [("accepted",) * 20, ("duplicate",) * 20], statuses
    assert all(
        {r["status"] for r in answer.json()["results"][:100]} == {"duplicate"} for answer in got
    )
    # overlapping batches of one device, and another device's batch, all at the same moment
    got = _at_once(
        (a, dev, chain[100:220], "overlap-a"),
        (b, dev, chain[150:300], "overlap-b"),
        (b, other, others, "other"),
    )
    assert all(r.status_code == 200 for r in got), [r.text for r in got]
    assert got[2].json()["last_seq"] == 100
    store = a.storage()
    try:
        assert store.count(dev.device) == 300 and store.count(other.device) == 100
        assert store.last_seq(dev.device) == 300 and store.gaps(dev.device) == []
        assert store.forks(dev.device) == []
        assert [s for _d, s, _c in store.export(dev.device)] == list(range(1, 301))
    finally:
        store.close()
    with _client(b) as c:  # either server answers the same about the device
        final = _push(c, dev, chain[-5:], key="last").json()
        assert [r["status"] for r in final["results"]] == ["duplicate"] * 5
        assert final["last_seq"] == 300 and final["gaps"] == []
