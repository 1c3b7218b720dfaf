"""The access log (DPA 2018 s.62): every consultation or disclosure of personal data at the
reference API, through the admin API or the command line, is written to the store with who
did it, when and what; never the person's data. Append-only and hash-chained. Both storage
backends."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from daemon.records import receipt_code
from hil.refapi import __main__ as cli
from hil.refapi.storage import AccessEntry, SqliteStorage, access_chain_break
from hil.refapi.testing import InProcess, SimDevice, roster_doc
from tests.refapi.conftest import FakeClock

TOKEN = {"Authorization": "Bearer test-admin-token"}
PO = TOKEN | {"X-Operator": "po-2231", "X-Purpose": "audit"}
PERSON = "CR-424242"  # synthetic


def _reads(device: str, seq: int, code: str, sha: str) -> list[tuple[str, str]]:
    """(method, path) of every admin read of personal data."""
    return [
        ("GET", f"/v1/admin/devices/{device}/records"),
        ("GET", f"/v1/admin/receipts/{code}"),
        ("GET", "/v1/admin/alerts"),
        ("GET", f"/v1/admin/devices/{device}/missed"),
        ("GET", f"/v1/admin/devices/{device}/records/{seq}/review"),
        ("GET", f"/v1/admin/blobs/{sha}"),
        ("GET", "/v1/admin/access-log"),
    ]


async def _visit(api: InProcess, dev: SimDevice) -> tuple[str, str]:
    """A flagged check-in by a synthetic person, with its photo: (receipt code, photo hash)."""
    blob = b"KSEAL synthetic photo"
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/v1/blobs/{sha}"
    assert (
        await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    ).is_success
    record = dev.next_record(person=PERSON, photo=sha, flags=["id_review"])
    assert (await api.push(dev, [record])).status_code == 200
    roster = roster_doc({"ref": PERSON, "appointments": []})
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=PO)
    assert r.status_code == 200
    return receipt_code(record), sha


async def test_reads_of_personal_data_need_an_operator_and_the_token_comes_first(
    api: InProcess, dev: SimDevice
) -> None:
    code, sha = await _visit(api, dev)
    before = len(api.storage.access_log(limit=1000))
    for method, path in _reads(dev.device, 1, code, sha):
        r = await api.client.request(method, path, headers=TOKEN)
        assert r.status_code == 403 and r.json()["error"] == "operator_required", path
        named = TOKEN | {"X-Operator": "Jane Smith"}  # an id, never a name
        r = await api.client.request(method, path, headers=named)
        assert r.status_code == 422 and r.json()["error"] == "operator", path
        r = await api.client.request(method, path, headers={"X-Operator": "po-2231"})
        assert r.status_code == 401, path  # an operator id is no substitute for the token
        # who is not enough: why (DPA 2018 s.62(3)), from the fixed list, never free text
        for purpose in (None, "curious", "checking on Jane"):
            why = {} if purpose is None else {"X-Purpose": purpose}
            r = await api.client.request(
                method, path, headers=TOKEN | {"X-Operator": "po-2231"} | why
            )
            assert r.status_code == 403 and r.json()["error"] == "purpose_required", path
            assert "subject_access" in r.json()["detail"]
        r = await api.client.request(method, path, headers=PO)
        assert r.status_code in (200, 404), (path, r.text)
    review = f"/v1/admin/devices/{dev.device}/records/1/review"
    r = await api.client.put(
        review, json={"outcome": "confirmed", "reviewer": "po-1"}, headers=TOKEN
    )
    assert r.status_code == 403
    # the decision is the operator's own: a reviewer other than X-Operator is refused
    r = await api.client.put(review, json={"outcome": "confirmed", "reviewer": "po-1"}, headers=PO)
    assert r.status_code == 422 and r.json()["error"] == "reviewer"
    # only the named reads were logged, not the refused attempts
    assert len(api.storage.access_log(limit=1000)) == before + len(_reads("", 0, "", ""))
    # what holds no personal data still works with the token alone, and is not logged
    for path in ("/v1/admin/devices", f"/v1/admin/devices/{dev.device}"):
        assert (await api.client.get(path, headers=TOKEN)).status_code == 200
    assert (await api.client.post("/v1/admin/enrolment-codes", headers=TOKEN)).status_code == 200
    assert len(api.storage.access_log(limit=1000)) == before + len(_reads("", 0, "", ""))


async def test_each_read_says_who_when_and_what_but_nothing_about_the_person(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    code, sha = await _visit(api, dev)
    start = clock.now
    for method, path in _reads(dev.device, 1, code, sha):
        clock.now += 1
        assert (await api.client.request(method, path, headers=PO)).status_code in (200, 404)
    decision = {"outcome": "confirmed", "reviewer": "po-2231"}
    url = f"/v1/admin/devices/{dev.device}/records/1/review"
    assert (await api.client.put(url, json=decision, headers=PO)).status_code == 201
    missing = await api.client.get("/v1/admin/receipts/0000-0000", headers=PO)
    assert missing.status_code == 404
    log = (await api.client.get("/v1/admin/access-log", headers=PO)).json()
    got = [(e["operator"], e["via"], e["action"], e["device"], e["seq"], e["target"],
            e["outcome"]) for e in log]  # fmt: skip
    d = dev.device
    assert got == [
        ("po-2231", "api", "roster.publish", d, None, None, "ok"),
        ("po-2231", "api", "records.list", d, None, None, "ok"),
        ("po-2231", "api", "receipt.lookup", None, None, code, "ok"),
        ("po-2231", "api", "alerts.list", None, None, None, "ok"),
        ("po-2231", "api", "missed.list", d, None, None, "ok"),
        ("po-2231", "api", "review.read", d, 1, None, "not_found"),
        ("po-2231", "api", "blob.status", d, None, sha[:12], "ok"),
        ("po-2231", "api", "access_log.read", None, None, None, "ok"),
        ("po-2231", "api", "review.record", d, 1, None, "ok"),
        ("po-2231", "api", "receipt.lookup", None, None, "0000-0000", "not_found"),
    ]
    assert [e["at"] for e in log[1:8]] == [start + n for n in range(1, 8)]
    assert log[1]["detail"] == {"after_seq": 0, "returned": 1, "purpose": "audit"}
    assert log[4]["detail"]["tasks"] == 0
    assert {e["detail"].get("purpose") for e in log[1:]} == {"audit"}  # why, on every read
    # the person's reference and the flags of their record are nowhere in the log
    assert PERSON not in json.dumps(log) and "id_review" not in json.dumps(log)
    assert access_chain_break(log) is None


async def test_a_roster_published_without_an_operator_is_logged_as_unnamed(
    api: InProcess, dev: SimDevice
) -> None:
    roster = roster_doc(PERSON)
    url = f"/v1/admin/devices/{dev.device}/roster"
    assert (await api.client.put(url, json=roster, headers=TOKEN)).status_code == 200
    [entry] = api.storage.access_log()
    assert (entry["operator"], entry["action"], entry["detail"]) == (
        "unnamed", "roster.publish", {"people": 1})  # fmt: skip


async def test_the_log_is_read_a_page_at_a_time_by_operator_or_device(
    api: InProcess, dev: SimDevice
) -> None:
    other = SimDevice(clock=dev.clock)
    await api.enrol(other)
    for who, kiosk in (("po-1", dev), ("po-2", other), ("po-1", other)):
        url = f"/v1/admin/devices/{kiosk.device}/records"
        assert (
            await api.client.get(url, headers=TOKEN | {"X-Operator": who, "X-Purpose": "audit"})
        ).status_code == 200
    read = "/v1/admin/access-log"
    mine = (await api.client.get(read, params={"operator": "po-1"}, headers=PO)).json()
    assert [e["device"] for e in mine] == [dev.device, other.device]
    theirs = (await api.client.get(read, params={"device": other.device}, headers=PO)).json()
    assert [e["operator"] for e in theirs] == ["po-2", "po-1"]
    first = (await api.client.get(read, params={"limit": 2}, headers=PO)).json()
    rest = (await api.client.get(read, params={"after_id": first[-1]["id"]}, headers=PO)).json()
    assert [e["operator"] for e in first + rest][:3] == ["po-1", "po-2", "po-1"]
    assert [e["action"] for e in rest][-1] == "access_log.read"  # reading it is logged too
    bad = await api.client.get(read, params={"operator": "Jane Smith"}, headers=PO)
    assert bad.status_code == 422


def _raw(api: InProcess, sql: str) -> None:
    """Run SQL on the store directly, as someone with the database's credentials could."""
    store: Any = api.storage
    if isinstance(store, SqliteStorage):
        store.db.execute(sql)
    else:
        store._db().execute(sql)


async def test_the_log_is_append_only_and_a_changed_line_breaks_its_chain(
    api: InProcess, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        api.storage.log_access(AccessEntry(clock.now + n, "po-1", "api", "alerts.list"))
    assert access_chain_break(api.storage.access_log()) is None
    for sql in ("UPDATE access_log SET operator = 'po-9' WHERE id = 2",
                "DELETE FROM access_log WHERE id = 2"):  # fmt: skip
        with pytest.raises(Exception, match="append-only"):
            _raw(api, sql)
    where = ["access-log", *api.where(), "--operator", "audit-01", "--purpose", "audit"]
    assert cli.main([*where, "--verify"]) == 0
    head = api.storage.access_log()[2]["hash"]
    assert f"intact: 3 lines, newest hash {head}" in capsys.readouterr().err
    # someone who can turn the guard off (the database's owner) still leaves a trace
    if isinstance(api.storage, SqliteStorage):
        _raw(api, "DROP TRIGGER access_log_no_update")
    else:
        _raw(api, "ALTER TABLE access_log DISABLE TRIGGER access_log_no_change")
    _raw(api, "UPDATE access_log SET operator = 'po-9' WHERE id = 2")
    assert access_chain_break(api.storage.access_log()) == 2
    capsys.readouterr()
    assert cli.main([*where, "--verify"]) == 1
    assert "breaks at line 2" in capsys.readouterr().err


async def test_concurrent_writers_keep_one_chain(api: InProcess, clock: FakeClock) -> None:
    """Several API worker threads (or processes, on PostgreSQL) log at once: each line
    still follows the one before it."""

    def write(who: str) -> None:
        for _ in range(20):
            api.storage.log_access(AccessEntry(clock.now, who, "api", "records.list"))

    threads = [threading.Thread(target=write, args=(f"po-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = api.storage.access_log(limit=1000)
    assert len(log) == 80
    assert access_chain_break(log) is None


async def test_the_command_line_acts_are_logged_under_their_operator(
    api: InProcess,
    dev: SimDevice,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(cli, "now", clock)
    await api.push(dev, dev.records(3))
    where = api.where()
    with redirect_stdout(io.StringIO()):
        assert (
            cli.main(
                [
                    "export",
                    *where,
                    "--operator",
                    "audit-01",
                    "--purpose",
                    "audit",
                    "-o",
                    str(tmp_path / "x"),
                ]
            )
            == 0
        )
        assert cli.main(["export", *where, "--operator", "audit-01", "--purpose", "audit",
                         "--device", dev.device, "-o", str(tmp_path / "y")]) == 0  # fmt: skip
        with pytest.raises(SystemExit):
            cli.main(["export", *where, "-o", str(tmp_path / "z")])  # who, is required
        with pytest.raises(SystemExit):  # and why (DPA 2018 s.62(3))
            cli.main(["export", *where, "--operator", "audit-01", "-o", str(tmp_path / "z")])
    assert not (tmp_path / "z").exists()
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["access-log", *where, "--operator", "audit-02", "--purpose", "audit"]) == 0
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["operator"], e["via"], e["action"], e["device"]) for e in printed] == [
        ("audit-01", "cli", "records.export", None),
        ("audit-01", "cli", "records.export", dev.device),
        ("audit-02", "cli", "access_log.read", None),
    ]
    assert {e["detail"]["purpose"] for e in printed} == {"audit"}
    assert {e["at"] for e in printed} == {clock.now}
