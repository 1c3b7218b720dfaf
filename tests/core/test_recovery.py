"""A damaged outbox is detected at start-up, set aside intact, salvaged where it verifies,
and the kiosk carries on with a new outbox that says so."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from daemon.outbox import Outbox
from daemon.records import GENESIS, decode_unverified, record_hash, verify_chain
from daemon.recovery import open_or_recover
from tests.core.helpers import make_key, open_outbox, synthetic_checkin


def _fill(tmp: Path, key, n: int, acked: int) -> None:
    ob = open_outbox(tmp, key)
    for i in range(n):
        ob.append("checkin", synthetic_checkin(i))
    ob.resolve(acked)
    ob.write_anchor_hint()
    # free pages, so there is a freelist to damage without touching the records
    ob.db.execute("CREATE TABLE scratch(x)")
    ob.db.execute("INSERT INTO scratch SELECT randomblob(3000) FROM records")
    ob.db.execute("DROP TABLE scratch")
    ob.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ob.close()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _open(tmp: Path, key):
    return open_or_recover(tmp, device="kiosk-t1", key=key, clock=FakeClock(), min_free_bytes=1)


def test_damage_that_leaves_records_readable_loses_nothing(tmp_path: Path) -> None:
    key = make_key()
    _fill(tmp_path, key, 30, acked=20)
    db = tmp_path / Outbox.FILE
    raw = bytearray(db.read_bytes())
    trunk = int.from_bytes(raw[32:36], "big")  # first freelist trunk page (file header)
    raw[(trunk - 1) * 4096 : (trunk - 1) * 4096 + 8] = b"\xff" * 8
    db.write_bytes(bytes(raw))
    damaged = _sha(db)

    outbox, recovery = _open(tmp_path, key)
    assert recovery is not None
    assert (recovery.salvaged, recovery.salvaged_pending) == (30, 10)
    # the damaged file is kept, byte for byte, for an engineer
    assert _sha(tmp_path / recovery.set_aside / Outbox.FILE) == damaged
    # the 10 unsent check-ins are still pending, then the fault record that says what happened
    pend = outbox.pending()
    assert [p.seq for p in pend] == [*range(21, 31), 31]
    records = verify_chain([c for _s, _st, c in outbox.all_compact()], key.public_key())
    assert records[-1].type == "fault"
    assert records[-1].payload["detail"]["event"] == "outbox_recovered"
    outbox.close()
    # and a second start is a normal start
    again, none = _open(tmp_path, key)
    assert none is None and again.head()[0] == 31
    again.close()


def test_unreadable_file_continues_the_chain_from_the_anchor(tmp_path: Path) -> None:
    key = make_key()
    _fill(tmp_path, key, 12, acked=8)
    with open_outbox(tmp_path, key) as ob:
        acked_hash = dict((s, c) for s, _st, c in ob.all_compact())[8]
    (tmp_path / Outbox.FILE).write_bytes(b"this is not a database" * 500)

    outbox, recovery = _open(tmp_path, key)
    assert recovery is not None and recovery.salvaged == 0 and recovery.continued_from == 8
    fault = outbox.pending()
    assert [p.seq for p in fault] == [9]  # continues after the last acknowledged record
    assert decode_unverified(fault[0].compact)[1]["prev"] == record_hash(acked_hash)
    assert (tmp_path / recovery.set_aside / Outbox.FILE).read_bytes().startswith(b"this is not")
    outbox.close()


def _remove(tmp: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp / Outbox.FILE}{suffix}").unlink(missing_ok=True)


def _empty(tmp: Path) -> None:
    _remove(tmp)
    (tmp / Outbox.FILE).write_bytes(b"")


def _made_by_sync_first(tmp: Path) -> None:
    _remove(tmp)  # kiosk-sync.service started first and opened (so created) a new file
    Outbox(tmp, device="kiosk-t1", key=None, clock=FakeClock()).open().close()


@pytest.mark.parametrize("loss", [_remove, _empty, _made_by_sync_first])
def test_a_missing_or_empty_outbox_continues_the_chain_instead_of_forking_it(
    tmp_path: Path, loss: Callable[[Path], None]
) -> None:
    key = make_key()
    _fill(tmp_path, key, 12, acked=8)
    with open_outbox(tmp_path, key) as ob:
        on_server = [c for s, _st, c in ob.all_compact() if s <= 8]  # acknowledged
    acked = on_server[-1]
    loss(tmp_path)

    outbox, recovery = _open(tmp_path, key)
    assert recovery is not None and recovery.event == "outbox_missing"
    assert (recovery.continued_from, recovery.salvaged, recovery.set_aside) == (8, 0, "")
    (fault,) = outbox.pending()
    payload = decode_unverified(fault.compact)[1]
    assert (fault.seq, payload["prev"], payload["type"]) == (9, record_hash(acked), "fault")
    assert payload["detail"] == {
        "event": "outbox_missing",
        "set_aside": "",
        "salvaged": 0,
        "salvaged_pending": 0,
        "continued_from_seq": 8,
    }
    nxt = outbox.append("checkin", synthetic_checkin(99))
    # what the server holds (1..8) and what follows verify as one chain: no fork
    verify_chain([*on_server, fault.compact, nxt.compact], key.public_key(), "kiosk-t1")
    outbox.close()
    again, none = _open(tmp_path, key)  # and the next start is a normal one
    assert none is None and again.head()[0] == 10
    again.close()


def test_a_new_kiosk_starts_its_chain_at_the_genesis(tmp_path: Path) -> None:
    outbox, recovery = _open(tmp_path, make_key())
    assert recovery is None and outbox.head() == (0, GENESIS)
    outbox.close()


@pytest.mark.parametrize("signs", [True, False])
def test_whichever_process_opens_a_lost_outbox_first_continues_the_chain(
    tmp_path: Path, signs: bool
) -> None:
    """kiosk-sync (a blob_lost record), kioskctl (an export's record, a key rotation) or a
    reader may open the emptied outbox before kiosk.service: none starts a fork at seq 1, and
    the loss is recorded once, by the first that can sign."""
    key = make_key()
    _fill(tmp_path, key, 12, acked=8)
    with open_outbox(tmp_path, key) as ob:
        on_server = [c for s, _st, c in ob.all_compact() if s <= 8]
    _empty(tmp_path)
    other = Outbox(tmp_path, device="kiosk-t1", key=key if signs else None, clock=FakeClock())
    with other.open():
        if signs:
            other.append("staff_action", {"detail": {"action": "export"}})
    outbox, recovery = _open(tmp_path, key)  # then kiosk.service starts
    assert (recovery is not None) == (not signs)
    chain = [c for _s, _st, c in outbox.all_compact()]
    records = verify_chain([*on_server, *chain], key.public_key(), "kiosk-t1")
    assert [r.type for r in records[8:]] == (["fault", "staff_action"] if signs else ["fault"])
    assert records[8].payload["detail"]["event"] == "outbox_missing"
    outbox.close()
