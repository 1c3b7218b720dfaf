"""The officers' worklist and the evaluation figures over the API (hil/refapi/tasks.py,
hil/refapi/figures.py), on both storage backends."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.conftest import FakeClock

ADMIN = {"Authorization": "Bearer test-admin-token"}
OFFICER = ADMIN | {"X-Operator": "po-2231", "X-Purpose": "task"}
UK = zoneinfo.ZoneInfo("Europe/London")


def _uk(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UK).timestamp()


async def test_a_callback_is_due_the_same_working_day_and_closing_it_clears_the_alert(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    clock.now = _uk("2026-11-23 10:00")  # a Monday morning
    help_ = dev.next_record(type="see_officer", person="CR-000401", flags=["see_officer"],
                            detail={"asked_for_help": True})  # fmt: skip
    review = dev.next_record(type="checkin_fallback", person="CR-000402", flags=["id_review"])
    calm = dev.next_record(person="CR-000403")
    assert (await api.push(dev, [help_, review, calm])).status_code == 200

    clock.now = _uk("2026-11-23 18:00")  # the end of the working day has passed
    r = await api.client.get("/v1/admin/tasks", headers=OFFICER)
    assert r.status_code == 200
    tasks = r.json()["tasks"]
    assert [(t["kind"], t["person"], t["overdue"]) for t in tasks] == [
        ("callback", "CR-000401", True),  # overdue first: due at 17:00 today
        ("identity_review", "CR-000402", False),  # due at 17:00 tomorrow
    ]
    assert tasks[0]["due"] == _uk("2026-11-23 17:00")
    assert {
        a["seq"] for a in (await api.client.get("/v1/admin/alerts", headers=OFFICER)).json()
    } == {1, 2}

    url = f"/v1/admin/devices/{dev.device}/records/1/tasks/callback"
    closing = {"outcome": "called_back", "officer": "po-2231"}
    assert (
        await api.client.put(url, json=closing | {"officer": "po-9"}, headers=OFFICER)
    ).status_code == 422
    r = await api.client.put(url, json=closing, headers=OFFICER)
    assert r.status_code == 201 and r.json()["outcome"] == "called_back"
    assert (await api.client.put(url, json=closing, headers=OFFICER)).status_code == 409  # kept
    wrong = f"/v1/admin/devices/{dev.device}/records/3/tasks/callback"
    assert (await api.client.put(wrong, json=closing, headers=OFFICER)).json()[
        "error"
    ] == "no_such_task"

    open_ = (await api.client.get("/v1/admin/tasks", headers=OFFICER)).json()["tasks"]
    assert [t["kind"] for t in open_] == ["identity_review"]
    everything = await api.client.get("/v1/admin/tasks", params={"state": "all"}, headers=OFFICER)
    closed = [t for t in everything.json()["tasks"] if t["closed"]]
    assert closed[0]["closed"]["officer"] == "po-2231" and closed[0]["overdue"] is False
    assert {
        a["seq"] for a in (await api.client.get("/v1/admin/alerts", headers=OFFICER)).json()
    } == {2}

    # the identity review closes through its own decision
    review_url = f"/v1/admin/devices/{dev.device}/records/2/review"
    decision = {"outcome": "confirmed", "reviewer": "po-2231"}
    assert (await api.client.put(review_url, json=decision, headers=OFFICER)).status_code == 201
    assert (await api.client.get("/v1/admin/tasks", headers=OFFICER)).json()["tasks"] == []
    # reading the worklist names a person: it needs an operator, and is logged
    assert (await api.client.get("/v1/admin/tasks", headers=ADMIN)).status_code == 403
    log = (await api.client.get("/v1/admin/access-log", headers=OFFICER)).json()
    assert "tasks.list" in {line["action"] for line in log}


async def test_tasks_fall_due_after_the_bank_holidays_not_on_them(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    clock.now = _uk("2026-12-24 16:45")  # Christmas Eve, after 16:00
    help_ = dev.next_record(type="see_officer", person="CR-000411", flags=["see_officer"],
                            detail={"asked_for_help": True})  # fmt: skip
    review = dev.next_record(type="checkin_fallback", person="CR-000412", flags=["id_review"])
    assert (await api.push(dev, [help_, review])).status_code == 200
    clock.now = _uk("2026-12-28 12:00")  # Boxing Day's substitute: nobody is overdue yet
    tasks = (await api.client.get("/v1/admin/tasks", headers=OFFICER)).json()["tasks"]
    assert [(t["kind"], t["due"], t["overdue"]) for t in tasks] == [
        ("callback", _uk("2026-12-29 17:00"), False),  # the first working day after Christmas
        ("identity_review", _uk("2026-12-30 17:00"), False),  # and the one after that
    ]


async def test_the_evaluation_figures_come_from_what_the_kiosks_sent(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    clock.now = _uk("2026-11-23 10:00")
    synced = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    at = dt.datetime.fromtimestamp(clock.now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fb = {"type": "checkin_fallback", "flags": ["id_review"], "verify": {"method": "dob_photo"}}
    records = [
        dev.next_record(person="CR-000501", at=at, clock=synced, verify={"method": "fingerprint"},
                        detail={"duration_s": 100}),
        dev.next_record(person="CR-000502", at=at, clock=synced, detail={"duration_s": 250}, **fb),
    ]  # fmt: skip
    assert (await api.push(dev, records)).status_code == 200
    clock.now += 3600
    r = await api.client.get("/v1/admin/figures", params={"days": 7}, headers=OFFICER)
    assert r.status_code == 200
    out = r.json()
    assert out["visits"] == 2 and out["fallback_rate"] == 0.5 and out["manual_review_rate"] == 0.5
    assert out["duration_s"]["under_target"] == 0.5
    assert out["time_to_review_h"] == {"median": None, "reviewed": 0, "waiting": 1}
    assert (await api.client.get("/v1/admin/figures", headers=ADMIN)).status_code == 403


async def test_uptime_is_the_share_of_the_period_the_kiosk_said_it_was_running(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    start = clock.now
    for minute in range(180):  # a heartbeat a minute; the check-in process stops at minute 90
        body = {"queue_depth": 0, "kiosk": "running" if minute < 90 else "not_reporting"}
        api.storage.heartbeat(dev.device, body, start + 60 * minute)
    clock.now = start + 180 * 60
    r = await api.client.get("/v1/admin/figures", params={"days": 180 / 1440}, headers=OFFICER)
    assert r.json()["uptime"] == {dev.device: round(89 / 180, 3)}


async def test_uptime_of_a_kiosk_enrolled_in_the_period_is_from_its_enrolment(
    api: InProcess, clock: FakeClock
) -> None:
    """A kiosk installed part-way through the period was not down before it was there: its
    uptime is the share of the time since its enrolment, as the store recorded it."""
    start = clock.now
    running = {"queue_depth": 0, "kiosk": "running"}
    new = SimDevice(clock=clock)
    clock.now = start + 60 * 60  # installed at minute 60 of 180
    await api.enrol(new)
    gappy = SimDevice(clock=clock)
    clock.now = start + 120 * 60  # installed at minute 120, down from minute 150 to 170
    await api.enrol(gappy)
    for minute in range(60, 180):
        api.storage.heartbeat(new.device, running, start + 60 * minute)
        if minute >= 120 and not 150 < minute < 170:
            api.storage.heartbeat(gappy.device, running, start + 60 * minute)
    clock.now = start + 180 * 60
    r = await api.client.get("/v1/admin/figures", params={"days": 180 / 1440}, headers=OFFICER)
    assert r.status_code == 200, r.text
    assert r.json()["uptime"] == {
        new.device: round(119 / 120, 3),
        gappy.device: round((30 + 9) / 60, 3),
    }


async def test_a_chosen_route_makes_no_identity_review_only_a_sampled_photo_check(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """Visits by someone who declined fingerprints are not exceptions: no identity review, not
    on the alerts list; one in four (by the record's random id) is a photo check due within
    five working days, closed by the identity decision like a review, and counted apart."""
    from daemon.records import uuid7
    from hil.refapi.tasks import photo_check_sampled

    clock.now = _uk("2026-11-23 10:00")  # a Monday morning

    def record_id(sampled: bool) -> str:
        return next(
            i for i in iter(uuid7, None) if photo_check_sampled(dev.device, 0, {"id": i}) == sampled
        )

    chosen = {"verify": {"method": "dob_photo_by_choice", "score": None, "threshold": None,
              "attempts": 0}, "detail": {"biometric": "declined"}, "photo": "ab" * 32}  # fmt: skip
    records = [
        dev.next_record(person="CR-000601", id=record_id(True), **chosen),
        dev.next_record(person="CR-000601", id=record_id(False), **chosen),
        dev.next_record(type="checkin_fallback", person="CR-000602", flags=["id_review"],
                        verify={"method": "dob_photo", "fallback": "no_template"}),
    ]  # fmt: skip
    assert (await api.push(dev, records)).status_code == 200

    tasks = (await api.client.get("/v1/admin/tasks", headers=OFFICER)).json()["tasks"]
    assert [(t["seq"], t["kind"], t["due"]) for t in tasks] == [
        (3, "identity_review", _uk("2026-11-24 17:00")),  # the fallback: the next working day
        (1, "photo_check", _uk("2026-11-30 17:00")),  # the sample: within five
    ]
    alerts = (await api.client.get("/v1/admin/alerts", headers=OFFICER)).json()
    assert {a["seq"] for a in alerts} == {3}  # a chosen route is nobody's alert
    review_url = f"/v1/admin/devices/{dev.device}/records/1/review"
    decision = {"outcome": "confirmed", "reviewer": "po-2231"}
    assert (await api.client.put(review_url, json=decision, headers=OFFICER)).status_code == 201
    tasks = (await api.client.get("/v1/admin/tasks", headers=OFFICER)).json()["tasks"]
    assert [t["kind"] for t in tasks] == ["identity_review"]
    wrong = f"/v1/admin/devices/{dev.device}/records/1/tasks/photo_check"
    closing = {"outcome": "seen", "officer": "po-2231"}
    assert (await api.client.put(wrong, json=closing, headers=OFFICER)).status_code == 422

    clock.now += 3600
    out = (await api.client.get("/v1/admin/figures", params={"days": 7}, headers=OFFICER)).json()
    assert out["photo_checks"] == {"sampled": 1, "reviewed": 1}
    assert out["by_choice_rate"] == round(2 / 3, 3) and out["fallback_rate"] == 1.0
    assert out["manual_review_rate"] == round(1 / 3, 3)
    assert out["falling_back"] == []
