"""The durable outbox on a real SQLite file."""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon import outbox as outbox_mod
from daemon.clock import FakeClock
from daemon.errors import DiskFull, OutboxCorrupt, StorageError
from daemon.keys import FileKeyBackend
from daemon.outbox import _MIGRATIONS, Outbox
from daemon.records import verify_chain
from tests.core.helpers import make_key, open_outbox, synthetic_checkin


def test_durability_settings_are_real(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as ob:
        assert ob.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ob.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_records_survive_reopen_and_chain_verifies(tmp_path: Path) -> None:
    key = make_key()
    with open_outbox(tmp_path, key) as ob:
        for i in range(20):
            ob.append("checkin", synthetic_checkin(i))
    with open_outbox(tmp_path, key) as ob:
        rec = ob.append("checkin", synthetic_checkin(99))
        assert rec.seq == 21
        compacts = [c for _s, _st, c in ob.all_compact()]
        assert ob.stats().depth == 21
    verify_chain(compacts, key.public_key(), "kiosk-t1", head_seq=21)


def test_a_caller_s_fields_cannot_move_the_chain(tmp_path: Path) -> None:
    """The chain's own keys come from the outbox, whatever a caller's fields say: a stray
    ``seq``, ``prev`` or ``device`` cannot fork the chain or sign for another kiosk."""
    key = make_key()
    with open_outbox(tmp_path, key) as ob:
        first = ob.append("checkin", synthetic_checkin(1))
        odd = {"seq": 1, "prev": "A" * 43, "device": "kiosk-other", "type": "boot"}
        rec = ob.append("checkin", {**synthetic_checkin(2), **odd})
        assert (rec.seq, rec.device, rec.type) == (2, "kiosk-t1", "checkin")
        compacts = [c for _s, _st, c in ob.all_compact()]
    assert compacts == [first.compact, rec.compact]
    verify_chain(compacts, key.public_key(), "kiosk-t1", head_seq=2)


def test_ack_retires_and_park_keeps_with_reason(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as ob:
        for i in range(5):
            ob.append("checkin", synthetic_checkin(i))
        ob.resolve(3, {3: "schema"})
        assert [p.seq for p in ob.pending()] == [4, 5]
        assert ob.parked() == [(3, "checkin", "schema")]
        s = ob.stats()
        assert (s.depth, s.parked, s.acked, s.last_seq) == (2, 1, 2, 5)
        # a late or repeated answer changes nothing: resolved records stay resolved
        ob.resolve(2)
        ob.resolve(3)
        assert ob.parked() == [(3, "checkin", "schema")]
        assert [p.seq for p in ob.pending()] == [4, 5]
        assert [st for _s, st, _c in ob.all_compact()] == [
            "acked",
            "acked",
            "parked",
            "pending",
            "pending",
        ]


def test_photo_blob_is_durable_and_deleted_only_after_ack(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as ob:
        rec = ob.append("checkin", synthetic_checkin(1), blob=b"sealed-bytes" * 100)
        sha = rec.payload["photo"]
        path = ob.blob_path(sha)
        assert path.read_bytes() == b"sealed-bytes" * 100
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert not ob.blob_uploaded(sha)
        ob.append("checkin", synthetic_checkin(2))
        ob.resolve(1)  # record acked but blob not yet confirmed uploaded: kept
        assert path.exists()
        ob.mark_blob_uploaded(sha)
        ob.resolve(2)
        assert not path.exists()


def test_a_lost_blob_is_recorded_once_in_the_chain_then_forgotten(tmp_path: Path) -> None:
    key = make_key()
    with open_outbox(tmp_path, key) as ob:
        photo = ob.append("checkin", synthetic_checkin(1), blob=b"sealed-photo" * 10)
        enrol = ob.append(
            "finger_enrolment",
            {"person": "CR-000002", "detail": {"consent": True}},
            blob=b"sealed-templates" * 10,
            blob_field="templates",
        )
        sha, tsha = photo.payload["photo"], enrol.payload["templates"]
        assert ob.record_blob_lost(sha, "damaged") == 3
        assert ob.record_blob_lost(sha, "damaged") == 3  # again (a crash in between): once
        assert ob.record_blob_lost(tsha, "missing") == 4
        assert not ob.blob_path(sha).exists() and ob.blob_uploaded(sha)  # nothing waits
        assert ob.blobs_not_uploaded() == []
        chain = [c for _s, _state, c in ob.all_compact()]
    records = verify_chain(chain, key.public_key(), "kiosk-t1", head_seq=4)
    lost = [r.payload for r in records[2:]]
    assert [(p["type"], p["person"], p["flags"]) for p in lost] == [
        ("blob_lost", "CR-000001", ["photo_lost"]),
        ("blob_lost", "CR-000002", ["templates_lost"]),
    ]
    assert lost[0]["detail"] == {"blob": sha, "kind": "photo", "reason": "damaged", "seqs": [1]}
    assert "photo" not in lost[0]  # it names the blob in detail only: nothing waits for it


def test_a_lost_blob_that_cannot_be_recorded_stays_waiting(tmp_path: Path) -> None:
    key = make_key()
    with open_outbox(tmp_path, key) as ob:
        sha = ob.append("checkin", synthetic_checkin(1), blob=b"sealed" * 10).payload["photo"]
    with Outbox(tmp_path, device="kiosk-t1", key=None, clock=FakeClock()) as ob:
        with pytest.raises(StorageError):
            ob.record_blob_lost(sha, "damaged")
        assert ob.blobs_not_uploaded() == [sha] and ob.blob_path(sha).exists()
        assert ob.head()[0] == 1


def test_salvaged_records_wait_only_for_blobs_that_can_still_go(tmp_path: Path) -> None:
    """After a recovery, an acknowledged record's photo went up long ago unless its file is
    still here; a pending record's photo waits (and is lost, not silently dropped, if its file
    is gone)."""
    key = make_key()
    with open_outbox(tmp_path / "old", key) as ob:
        shas = [
            ob.append("checkin", synthetic_checkin(i), blob=f"photo-{i}".encode() * 9).payload[
                "photo"
            ]
            for i in range(4)
        ]
        compacts = [c for _s, _state, c in ob.all_compact()]
    new = tmp_path / "new"
    (new / "blobs").mkdir(parents=True)
    shutil.copy(tmp_path / "old" / "blobs" / shas[1], new / "blobs" / shas[1])
    with open_outbox(new, key) as ob:
        ob.import_verified(compacts, pending_from=3)  # seqs 1-2 acked, 3-4 pending
        assert sorted(ob.blobs_not_uploaded()) == sorted(shas[1:])


def test_parked_reasons_are_counted(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as ob:
        for i in range(4):
            ob.append("checkin", synthetic_checkin(i))
        ob.resolve(4, {1: "schema", 2: "refused_alone:422:schema", 4: "schema"})
        assert ob.parked_reasons() == {"refused_alone:422:schema": 1, "schema": 2}


def test_orphan_blob_files_are_swept(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as ob:
        rec = ob.append("checkin", synthetic_checkin(1), blob=b"kept")
        (ob.blob_dir / ("f" * 64)).write_bytes(b"crash between rename and commit")
        (ob.blob_dir / ".abc.tmp123").write_bytes(b"half written")
        assert ob.sweep_orphans() == 2
        assert ob.blob_path(rec.payload["photo"]).exists()


def test_disk_nearly_full_refuses_new_checkins_and_harms_nothing(tmp_path: Path) -> None:
    key = make_key()
    with open_outbox(tmp_path, key) as ob:
        for i in range(3):
            ob.append("checkin", synthetic_checkin(i))
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with open_outbox(tmp_path, key, min_free_bytes=free + 10**9) as ob:
        with pytest.raises(DiskFull) as err:
            ob.append("checkin", synthetic_checkin(9))
        assert err.value.reason == "disk_full"
        assert "Staff" in str(err.value)
        assert ob.stats().depth == 3 and ob.head()[0] == 3
        verify_chain([c for _s, _st, c in ob.all_compact()], key.public_key(), head_seq=3)


def test_free_space_is_the_reserve_checks_own_reading_not_a_new_system_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk level is asked on every step of the check-in; it must cost the check-in path
    nothing: the same statvfs reading as append's reserve check, at most every 0.5 s, less
    the bytes written since."""
    calls = []
    real = os.statvfs

    def counted(path: object) -> os.statvfs_result:
        calls.append(path)
        return real(path)  # type: ignore[arg-type]

    with open_outbox(tmp_path) as ob:
        st = real(tmp_path)
        assert abs(ob.free_bytes() - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
        monkeypatch.setattr(outbox_mod.os, "statvfs", counted)
        start = time.monotonic()
        for i in range(100):
            before, read = ob.free_bytes(), len(calls)
            ob.append("checkin", synthetic_checkin(i), blob=os.urandom(64 * 1024))
            after = ob.free_bytes()
            if len(calls) == read:  # no new reading: the photo written is counted all the same
                assert after == before - 64 * 1024 - 4096
        elapsed = time.monotonic() - start
        assert len(calls) <= elapsed / 0.5 + 2, (len(calls), elapsed)


def test_usage_measures_the_recent_week_of_records_and_photos(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_outbox(tmp_path, clock=clock) as ob:
        assert ob.usage().records == 0 and ob.usage().photo_size == 250_000  # assumed
        for i in range(5):  # ten days ago: outside the week
            ob.append("checkin", synthetic_checkin(i))
        clock.advance(3 * 86400)
        young = Outbox(tmp_path / "young", device="kiosk-t2", key=make_key(), clock=clock)
        with young.open():
            young.append("boot", {"detail": {}})
            clock.advance(2 * 86400)
            assert young.usage().days == 2.0  # a two-day-old outbox is not averaged over 7
        clock.advance(86400)
        sizes = []
        for i in range(14):  # the last week: 14 check-ins, 7 with a photo, and a boot
            blob = os.urandom(10_000 + 100 * i) if i % 2 else None
            sizes += [len(blob)] if blob else []
            ob.append("checkin" if i % 3 else "see_officer", synthetic_checkin(i), blob=blob)
            clock.advance(6 * 3600)
        ob.append("boot", {"detail": {}})
        u = ob.usage()
        recent = [c for _s, _st, c in ob.all_compact()][5:]
    assert u.days == 7.0
    assert (u.records, u.checkins, u.photos) == (15, 14, 7)
    assert u.record_bytes == sum(len(c) for c in recent)
    assert u.photo_size == sum(sizes) / len(sizes)
    assert u.checkins_per_day == 2.0


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return r.returncode == 0


def test_a_really_full_disk_loses_nothing_already_queued() -> None:
    mnt = Path(tempfile.mkdtemp(prefix="kiosk-fulldisk-")) / "small"
    if os.geteuid() != 0 or not _tmpfs(mnt, "2m"):
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    try:
        key = make_key()
        ballast = mnt / "ballast"  # something else on the disk that staff can later remove
        ballast.write_bytes(b"\0" * 256 * 1024)
        # min_free_bytes=1: let the file system itself run out, not our guard
        with open_outbox(mnt, key, min_free_bytes=1) as ob:
            queued = 0
            with pytest.raises(DiskFull):
                for i in range(100_000):
                    ob.append("checkin", synthetic_checkin(i), blob=os.urandom(2048))
                    queued += 1
            assert queued > 10
        ballast.unlink()  # space comes back
        with open_outbox(mnt, key, min_free_bytes=1) as ob:
            compacts = [c for _s, _st, c in ob.all_compact()]
            assert len(compacts) == queued
            verify_chain(compacts, key.public_key(), head_seq=queued)
            assert ob.sweep_orphans() <= 1  # at most the blob of the refused check-in
            assert ob.append("checkin", synthetic_checkin(0)).seq == queued + 1
    finally:
        gc.collect()
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt.parent, ignore_errors=True)


def test_migration_from_version_1_keeps_data(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / Outbox.FILE)
    for statement in _MIGRATIONS[1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO records(seq, id, type, compact, created_ns) "
        "VALUES (1, 'x', 'boot', 'c.d.e', 0)"
    )
    db.commit()
    db.close()
    with open_outbox(tmp_path) as ob:
        assert ob.db.execute("PRAGMA user_version").fetchone()[0] == outbox_mod.SCHEMA_VERSION
        assert ob.db.execute("SELECT created_at FROM records").fetchone()[0] == 0
        assert ob.open_session() is None  # the newest table is there, and empty


def test_the_check_in_under_way_is_noted_until_its_own_record_saves_it(tmp_path: Path) -> None:
    key = make_key()
    note = {"session": 3, "person": "CR-900101", "verify": {"method": "fingerprint"}}
    with open_outbox(tmp_path, key) as ob:
        assert ob.open_session() is None
        ob.mark_session(note)
        ob.append("staff_action", {"detail": {"action": "unlock"}})  # another record: kept
    with open_outbox(tmp_path, key) as ob:  # durable: a restart finds it
        assert ob.open_session() == note
        ob.mark_session({**note, "verify": {"method": "dob_photo"}})  # replaced, not added
        assert ob.open_session() == {**note, "verify": {"method": "dob_photo"}}
        rec = ob.append("checkin", synthetic_checkin(1), end_session=True)
        assert ob.open_session() is None  # gone in the record's own transaction
        assert rec.seq == 2
        ob.mark_session(note)
        ob.clear_session()  # the person cancelled: nothing owed
        assert ob.open_session() is None


def test_a_record_that_fails_to_save_keeps_the_note(tmp_path: Path) -> None:
    key = make_key()
    note = {"session": 1, "person": "CR-900101"}
    with open_outbox(tmp_path, key) as ob:
        ob.mark_session(note)
        # the file may not grow: a record needing new pages fails inside its transaction
        pages = ob.db.execute("PRAGMA page_count").fetchone()[0]
        ob.db.execute(f"PRAGMA max_page_count = {pages}")
        big = {**synthetic_checkin(2), "detail": {"note": "x" * 20_000}}
        with pytest.raises(DiskFull):
            ob.append("checkin", big, end_session=True)
        assert ob.open_session() == note  # rolled back whole: the note is still owed
        assert ob.stats().depth == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / Outbox.FILE)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StorageError, match="newer") as err:
        open_outbox(tmp_path)
    assert not isinstance(err.value, OutboxCorrupt)  # never set aside as damaged


NEXT = outbox_mod.SCHEMA_VERSION + 1
NOW = outbox_mod.SCHEMA_VERSION


def _future_schema(monkeypatch: pytest.MonkeyPatch, readable_by: int) -> None:
    """Make this process the next release: one more schema version and migration, which
    declares the oldest software that can still use the file after it."""
    monkeypatch.setattr(outbox_mod, "SCHEMA_VERSION", NEXT)
    monkeypatch.setitem(
        outbox_mod._MIGRATIONS,
        NEXT,
        "ALTER TABLE records ADD COLUMN lang TEXT; CREATE TABLE future_notes (seq INTEGER)",
    )
    monkeypatch.setitem(outbox_mod.READABLE_BY, NEXT, readable_by)


def test_a_rolled_back_update_keeps_using_an_outbox_it_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update's trial boot migrates the shared outbox and queues check-ins; the trial
    fails and the old slot runs again. The old software opens the migrated file, sends what
    the trial queued and continues the same chain; the update, installed again, carries on."""
    key = make_key()
    with open_outbox(tmp_path, key) as ob:  # the old release, before the update
        ob.append("checkin", synthetic_checkin(1))
    with monkeypatch.context() as m:  # the trial boot of the update
        _future_schema(m, readable_by=NOW)
        with open_outbox(tmp_path, key) as ob:
            assert ob.schema == (NEXT, NEXT)
            for i in (2, 3):
                ob.append("checkin", synthetic_checkin(i))
    with open_outbox(tmp_path, key) as ob:  # rolled back: the old release again
        assert ob.schema == (NEXT, NOW)
        assert [p.seq for p in ob.pending()] == [1, 2, 3]  # the trial's check-ins go out
        assert ob.append("checkin", synthetic_checkin(4)).seq == 4
    with monkeypatch.context() as m:  # the fixed update, later
        _future_schema(m, readable_by=NOW)
        with open_outbox(tmp_path, key) as ob:
            ob.append("checkin", synthetic_checkin(5))
            compacts = [c for _s, _st, c in ob.all_compact()]
    assert len(verify_chain(compacts, key.public_key())) == 5  # one chain through it all


def test_a_migration_older_software_cannot_use_is_refused_and_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key()
    with monkeypatch.context() as m:
        _future_schema(m, readable_by=NEXT)
        with open_outbox(tmp_path, key) as ob:
            ob.append("checkin", synthetic_checkin(1))
    with pytest.raises(StorageError, match="made by newer kiosk software") as err:
        open_outbox(tmp_path, key)
    assert err.value.reason == "outbox_newer"
    assert "kioskctl update" in str(err.value)
    assert not isinstance(err.value, OutboxCorrupt)  # never set aside as damaged
    db = sqlite3.connect(tmp_path / Outbox.FILE)
    assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == NEXT
    db.close()


def test_every_migration_says_how_far_back_it_stays_usable() -> None:
    assert set(outbox_mod.READABLE_BY) == set(_MIGRATIONS)
    for version, oldest in outbox_mod.READABLE_BY.items():
        assert 1 <= oldest <= version


def test_retention_deletes_only_old_acknowledged_records(tmp_path: Path) -> None:
    clock = FakeClock()
    key = make_key()
    with open_outbox(tmp_path, key, clock=clock) as ob:
        for i in range(5):  # seq 1-5, made at t0
            ob.append("checkin", synthetic_checkin(i))
        ob.resolve(4, {2: "schema"})  # 1, 3, 4 acknowledged; 2 parked; 5 pending
        clock.advance(10 * 86400)
        ob.append("checkin", synthetic_checkin(5))  # seq 6, pending, 10 days younger
        assert ob.prune_acked(11 * 86400) == 0  # nothing old enough yet
        assert ob.prune_acked(9 * 86400) == 3  # 1, 3, 4
        assert [(s, st) for s, st, _c in ob.all_compact()] == [
            (2, "parked"),  # kept for the engineer, with its reason
            (5, "pending"),
            (6, "pending"),
        ]
        ob.resolve(6)
        clock.advance(20 * 86400)
        assert ob.prune_acked(1) == 1  # 5 goes; 6 is the chain head and stays
        assert [s for s, _st, _c in ob.all_compact()] == [2, 6]
        assert ob.append("checkin", synthetic_checkin(6)).seq == 7


def test_corrupt_file_is_detected(tmp_path: Path) -> None:
    (tmp_path / Outbox.FILE).write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    with pytest.raises(OutboxCorrupt):
        open_outbox(tmp_path)


def _writer(args: tuple[str, str, int]) -> None:
    path, keyfile, n = args
    key = FileKeyBackend(Path(keyfile)).load()
    with Outbox(Path(path), device="kiosk-t1", key=key, clock=FakeClock()) as ob:
        for i in range(n):
            ob.append("checkin", synthetic_checkin(i))


def test_two_processes_appending_never_fork_the_chain(tmp_path: Path) -> None:
    kb = FileKeyBackend(tmp_path / "key.pem")
    key = kb.create()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_writer, [(str(tmp_path / "d"), str(kb.path), 40)] * 2)
    with open_outbox(tmp_path / "d", key) as ob:
        compacts = [c for _s, _st, c in ob.all_compact()]
    verify_chain(compacts, key.public_key(), "kiosk-t1", head_seq=80)


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(st.sampled_from(["append", "ack", "park", "reopen"]), max_size=25))
def test_outbox_model(tmp_path_factory: pytest.TempPathFactory, ops: list[str]) -> None:
    """Against a plain model: nothing is lost, nothing retired without an ack."""
    tmp = tmp_path_factory.mktemp("model")
    key = make_key()
    ob = open_outbox(tmp, key)
    pending: list[int] = []
    parked: list[int] = []
    made = 0
    for op in ops:
        if op == "append":
            made += 1
            assert ob.append("checkin", synthetic_checkin(made)).seq == made
            pending.append(made)
        elif op == "ack" and pending:
            ob.resolve(pending[:2][-1])
            pending = pending[2:]
        elif op == "park" and pending:
            ob.resolve(pending[0], {pending[0]: "schema"})
            parked.append(pending.pop(0))
        elif op == "reopen":
            ob.close()
            ob = open_outbox(tmp, key)
    assert [p.seq for p in ob.pending()] == pending
    assert [p[0] for p in ob.parked()] == parked
    assert ob.head()[0] == made
    ob.close()
