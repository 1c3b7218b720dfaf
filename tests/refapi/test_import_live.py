"""``kiosk-refapi import`` into the store of a reference API that is running at the same time
(a real ``serve`` process on loopback on the same database), while the kiosk syncs records that
are also in the file: every record is stored once, what arrived by sync counts as a duplicate,
and an import that cannot finish stores nothing and says what to do (never a traceback, never
half a card). Synthetic data only."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from hil.refapi import storage as storage_mod
from hil.refapi.__main__ import main
from hil.refapi.server import ROOT, RefApi
from hil.refapi.storage import SqliteStorage, StoredRecord
from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.test_server import _client, _enrolled, _push


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RefApi]:
    """A real reference API in a subprocess, on SQLite in its folder or on PostgreSQL."""
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    api = RefApi(tmp_path / "api", database=dsn)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _where(api: RefApi) -> list[str]:
    return ["--database", api.database] if api.database else ["--data", str(api.data)]


def _import_cli(api: RefApi, device: str, card: Path) -> subprocess.CompletedProcess[str]:
    """``kiosk-refapi import`` as an operator runs it: its own process."""
    return subprocess.run(
        [sys.executable, "-m", "hil.refapi", "import", *_where(api), "--device", device,
         "--operator", "fe-0417", str(card)],
        capture_output=True, text=True, cwd=ROOT, timeout=90, check=False,
    )  # fmt: skip


def _card(tmp_path: Path, records: Sequence[str]) -> Path:
    card = tmp_path / "card.jws"  # as `kioskctl outbox export` writes it
    card.write_text("".join(r + "\n" for r in records))
    return card


def _stored(api: RefApi, device: str) -> tuple[int, int, list[tuple[int, int]], list[Any]]:
    store = api.storage()
    try:
        log = [(e["action"], e["outcome"]) for e in store.access_log(0, 1000)]
        return store.count(device), store.last_seq(device), store.gaps(device), log
    finally:
        store.close()


@pytest.mark.slow
def test_an_import_while_the_server_runs_and_the_kiosk_syncs_stores_each_record_once(
    server: RefApi, tmp_path: Path
) -> None:
    """The kiosk's card is imported (a real ``kiosk-refapi import`` process) while the kiosk,
    back on the network, is still sending the same records to the running server: some
    arrived before the import, the rest arrive during it."""
    n = 2500
    with _client(server, timeout=60) as c:
        dev = _enrolled(server, c)
        records = dev.records(n)
        assert _push(c, dev, records[:300]).status_code == 200  # arrived by sync before
        card = _card(tmp_path, records)
        statuses: list[int] = []
        importing = subprocess.Popen(
            [sys.executable, "-m", "hil.refapi", "import", *_where(server), "--device",
             dev.device, "--operator", "fe-0417", str(card)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

        def sync() -> None:  # small batches, so the sync is storing while the import is
            for i in range(300, n, 5):
                statuses.append(_push(c, dev, records[i : i + 5]).status_code)

        syncing = threading.Thread(target=sync)
        syncing.start()
        out, err = importing.communicate(timeout=90)
        syncing.join(90)
    assert importing.returncode == 0, err
    assert "Traceback" not in err
    counts = json.loads(out)
    assert counts["unplaced"] == 0
    assert set(counts["chains"]) == {dev.device}
    got = counts["chains"][dev.device]
    assert set(got) <= {"accepted", "duplicate"} and sum(got.values()) == n
    assert got["duplicate"] >= 300  # what arrived by sync before the import
    assert set(statuses) == {200}  # the server never failed a batch for the import
    count, last, gaps, log = _stored(server, dev.device)
    assert (count, last, gaps) == (n, n, [])
    assert ("records.import", "ok") in log


class _SyncMidImport:
    """Wraps ``SqliteStorage.records_near`` of this process (the import's store, not the
    server's): after the import has read what is stored near its first batch, the kiosk
    sends part of that batch to the running server, and the import goes on once that answer
    came or after ``wait_s``."""

    def __init__(self, api: RefApi, dev: SimDevice, records: list[str], wait_s: float) -> None:
        self.api, self.dev, self.records, self.wait_s = api, dev, records, wait_s
        self.answer: httpx.Response | None = None
        self.thread: threading.Thread | None = None
        self.original = SqliteStorage.records_near

    def records_near(
        self, store: SqliteStorage, device: str, seqs: Sequence[int], ids: Sequence[str]
    ) -> tuple[dict[int, StoredRecord], set[str]]:
        found = self.original(store, device, seqs, ids)
        if self.thread is None:
            self.thread = threading.Thread(target=self.send)
            self.thread.start()
            self.thread.join(self.wait_s)  # the server stores them now, if it can
        return found

    def send(self) -> None:
        with _client(self.api, timeout=60) as c:
            self.answer = _push(c, self.dev, self.records)


def test_records_the_server_stores_during_the_import_count_as_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The import read what was stored near its records; before it wrote, the running server
    stored some of the same records from the kiosk (the moment the race used to lose, with
    ``UNIQUE constraint failed`` and a traceback): now the server waits for the import, and
    then finds them held."""
    api = RefApi(tmp_path / "api")
    api.start()
    try:
        with _client(api) as c:
            dev = _enrolled(api, c)
        records = dev.records(40)
        hook = _SyncMidImport(api, dev, records[10:20], wait_s=1.5)
        monkeypatch.setattr(SqliteStorage, "records_near",
                            lambda store, *a: hook.records_near(store, *a))  # fmt: skip
        args = ["import", "--data", str(api.data), "--device", dev.device, "--operator",
                "fe-0417", str(_card(tmp_path, records))]  # fmt: skip
        assert main(args) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["chains"] == {dev.device: {"accepted": 40}}
        assert hook.thread is not None
        hook.thread.join(30)
        assert hook.answer is not None and hook.answer.status_code == 200, hook.answer
        results = hook.answer.json()["results"]
        assert [r["status"] for r in results] == ["duplicate"] * 10
        monkeypatch.undo()
        count, last, gaps, _log = _stored(api, dev.device)
        assert (count, last, gaps) == (40, 40, [])
    finally:
        api.stop()


def test_an_import_that_finds_the_database_busy_stores_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holds SQLite's write lock for longer than the import waits (a server
    storing, ``prune``): the import gives up cleanly and can simply be run again."""
    assert main(["init", "--data", str(tmp_path)]) == 0
    dev = SimDevice()
    store = SqliteStorage(tmp_path / "refapi.sqlite3", create=False)
    store.add_code("code-123456", 9e9)
    store.enrol("code-123456", dev.device, dev.alg, dev.public_pem, 0.0)
    store.close()
    card = _card(tmp_path, dev.records(3))
    args = ["import", "--data", str(tmp_path), "--device", dev.device, "--operator", "fe-0417",
            str(card)]  # fmt: skip
    monkeypatch.setattr(storage_mod, "BUSY_TIMEOUT_MS", 200)
    writer = sqlite3.connect(tmp_path / "refapi.sqlite3", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        capsys.readouterr()
        assert main(args) == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    err = capsys.readouterr().err
    assert "busy" in err and "nothing was imported" in err and "run the same import again" in err
    store = SqliteStorage(tmp_path / "refapi.sqlite3", create=False)
    try:
        assert store.count() == 0
    finally:
        store.close()
    assert main(args) == 0  # run again, it goes through
    assert json.loads(capsys.readouterr().out)["chains"] == {dev.device: {"accepted": 3}}


async def test_an_import_that_fails_part_way_stores_none_of_the_card(
    api: InProcess,
    dev: SimDevice,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A card of more than one batch whose second batch the database refuses (a full disk, a
    lost connection): the first batch is not left behind on its own, the operator is told
    nothing was imported, and the same command run again imports the whole card."""
    from hil.refapi import retired

    records = dev.records(700)  # two batches of the verifier
    card = _card(tmp_path, records)
    calls = 0
    original = retired._process_batch

    def failing(*a: Any, **k: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return original(*a, **k)

    monkeypatch.setattr(retired, "_process_batch", failing)
    args = ["import", *api.where(), "--device", dev.device, "--operator", "fe-0417", str(card)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "disk I/O error" in err
    assert api.storage.count(dev.device) == 0
    actions = [(e["action"], e["outcome"]) for e in api.storage.access_log(0, 100)]
    assert actions == [("records.import", "failed")]
    monkeypatch.undo()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["chains"] == {dev.device: {"accepted": 700}}
    assert api.storage.count(dev.device) == 700
