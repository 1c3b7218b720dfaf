"""The service's evaluation figures (hil/refapi/figures.py), from synthetic records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hil.refapi.figures import Inputs, figures

DAY = 86400.0
MON = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC).timestamp()  # a Monday, 09:00 UTC


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _visit(person: str, t: float, *, method: str = "fingerprint", type_: str = "checkin",
           flags: tuple[str, ...] = (), **detail: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "type": type_,
        "person": person,
        "at": _iso(t),
        "clock": {"synced": True},
        "flags": list(flags),
        "verify": {"method": method},
        "detail": detail,
    }


def test_the_figures_an_evaluation_needs() -> None:
    fb = {"method": "dob_photo", "type_": "checkin_fallback", "flags": ("id_review",)}
    records = [
        ("k1", 1, _visit("CR-000001", MON, duration_s=95), MON + 5),
        ("k1", 2, _visit("CR-000002", MON + 600, duration_s=150), MON + 605),
        ("k1", 3, _visit("CR-000003", MON + 1200, duration_s=240, **fb), MON + 1205),
        ("k1", 4, _visit("CR-000003", MON + DAY, duration_s=200, **fb), MON + DAY + 5),
        ("k2", 1, _visit("CR-000003", MON + 2 * DAY, duration_s=210, **fb), MON + 2 * DAY + 5),
        (
            "k2",
            2,
            _visit(
                "CR-000004",
                MON + 2 * DAY,
                type_="see_officer",
                flags=("see_officer",),
                duration_s=100,
                asked_for_help=True,
            ),
            MON + 2 * DAY + 5,
        ),
        (
            "k2",
            3,
            _visit(
                "CR-000005",
                MON + 3 * DAY,
                type_="see_officer",
                flags=("see_officer",),
                duration_s=120,
                flagged=["speak_to_someone"],
            ),
            MON + 3 * DAY + 5,
        ),
        ("k2", 4, {"type": "tamper", "flags": [], "at": _iso(MON), "clock": {}}, MON),
        ("k1", 5, _visit("CR-000001", MON - 30 * DAY), MON - 30 * DAY),  # before the period
    ]
    appointments = [{"at": _iso(MON + 3600)}, {"at": _iso(MON + 4 * DAY)}]
    thursday = {"at": _iso(MON + 3 * DAY)}
    roster = {
        "people": [
            {"ref": "CR-000001", "appointments": appointments},
            {"ref": "CR-000002", "next_appointment": thursday},
        ]
    }
    beats = [(MON + i * 60.0, True) for i in range(0, 24 * 60 * 7)]
    beats = [b for b in beats if not MON + 2 * DAY <= b[0] < MON + 3 * DAY]  # a day down
    out = figures(
        Inputs(
            since=MON - 3600,
            until=MON + 7 * DAY - 3600,
            records=records,
            reviews={("k1", 3): MON + 1205 + 4 * 3600, ("k1", 4): MON + DAY + 5 + 20 * 3600},
            outcomes={
                ("k2", 2, "callback"): ("called_back", MON + 2 * DAY + 3600),  # same day
                ("k2", 3, "callback"): ("called_back", MON + 5 * DAY),  # days late
            },
            heartbeats={"k1": beats},
            rosters={"k1": roster, "k2": roster},  # one office, two kiosks: counted once
        )
    )
    assert out["visits"] == 7
    assert out["by_method"] == {"dob_photo": 3, "fingerprint": 4}
    assert out["fallback_rate"] == round(3 / 7, 3) and out["manual_review_rate"] == round(3 / 7, 3)
    assert out["duration_s"]["median"] == 150 and out["duration_s"]["under_target"] == round(
        4 / 7, 3
    )
    assert out["time_to_review_h"] == {"median": 12.0, "reviewed": 2, "waiting": 1}
    assert out["callback_fulfilment"] == {"due": 2, "reached_in_time": 1, "rate": 0.5}
    # CR-000001: Monday's attended, Friday's missed; CR-000002: Thursday's missed (came Monday)
    assert out["on_time_rate"] == {"due": 3, "on_time": 1, "rate": 0.333}
    assert 0.83 <= out["uptime"]["k1"] <= 0.86  # six days of seven
    assert out["falling_back"] == [{"ref": "CR-000003", "fallbacks": 3}]  # offer re-enrolment


def test_a_chosen_route_is_not_falling_back_and_is_never_offered_re_enrolment() -> None:
    """Someone who declined fingerprints is not counted as a fallback, nor listed among the
    people who keep falling back (offer them re-enrolment): neither by the route the roster
    gives them now, nor in the days between their "no" at the enrolment notice and the roster
    saying so (their visits are still fallbacks with no template then)."""
    chose = {"method": "dob_photo_by_choice"}
    fb = {"method": "dob_photo", "type_": "checkin_fallback", "flags": ("id_review",)}
    refusal = {"type": "finger_enrolment", "person": "CR-000007", "at": _iso(MON - DAY),
               "clock": {"synced": True}, "flags": [], "detail": {"consent": False}}  # fmt: skip
    records: list[tuple[str, int, dict[str, Any], float]] = [
        ("k1", 1, _visit("CR-000001", MON), MON + 5),
        ("k1", 2, refusal, MON - DAY + 5),
        ("k1", 3, {**_visit("CR-000006", MON + 60), "verify": chose}, MON + 65),
        ("k1", 4, {**_visit("CR-000006", MON + DAY), "verify": chose}, MON + DAY + 5),
        ("k1", 5, {**_visit("CR-000006", MON + 2 * DAY), "verify": chose}, MON + 2 * DAY + 5),
    ]
    for i in range(3):  # refused at the kiosk; the roster not yet updated
        t = MON + i * DAY + 600
        records.append(("k1", 6 + i, _visit("CR-000007", t, **fb), t + 5))
    for i in range(3):  # someone whose finger keeps failing: still offered re-enrolment
        t = MON + i * DAY + 1200
        records.append(("k1", 9 + i, _visit("CR-000008", t, **fb), t + 5))
    out = figures(Inputs(since=MON - 3600, until=MON + 7 * DAY, records=records))
    assert out["visits"] == 10
    assert out["by_method"] == {"dob_photo": 6, "dob_photo_by_choice": 3, "fingerprint": 1}
    assert out["fallback_rate"] == round(6 / 7, 3)  # of the visits that expected a finger
    assert out["by_choice_rate"] == 0.3
    assert out["falling_back"] == [{"ref": "CR-000008", "fallbacks": 3}]
    assert set(out["photo_checks"]) == {"sampled", "reviewed"}
    # an agreement after the refusal: their fallbacks count again
    agreed = {**refusal, "at": _iso(MON - 3600), "detail": {"consent": True}}
    again = figures(
        Inputs(since=MON - 3600, until=MON + 7 * DAY,
               records=[*records, ("k1", 12, agreed, MON - 3600 + 5)])
    )  # fmt: skip
    assert [r["ref"] for r in again["falling_back"]] == ["CR-000007", "CR-000008"]


def test_a_retired_chain_is_its_kiosk_until_it_was_retired_not_a_kiosk_of_its_own() -> None:
    """Uptime is the kiosk's, by device id: a retired chain (``<device>~<n>``, the unit that was
    replaced) counts for its device id up to its retirement, and a device id retired and not
    enrolled again is measured up to then, not as a kiosk that went silent."""
    since, until = MON, MON + 180 * 60

    def beats(first: int, last: int) -> list[tuple[float, bool]]:
        """A heartbeat a minute, from minute ``first`` to ``last`` of the period."""
        return [(since + 60.0 * i, True) for i in range(first, last + 1)]

    out = figures(
        Inputs(
            since=since,
            until=until,
            heartbeats={
                "k1~1": beats(0, 60),  # the unit that died at minute 60, retired at 70
                "k1": beats(80, 179),  # the spare under the same id, from minute 80
                "k2~1": beats(0, 30),  # retired at minute 40, never replaced
                "k3~1": [],  # retired before the period
                "k4": beats(0, 179),  # never retired
            },
            retired={
                "k1~1": ("k1", since + 70 * 60),
                "k2~1": ("k2", since + 40 * 60),
                "k3~1": ("k3", since - DAY),
            },
        )
    )
    assert out["uptime"] == {
        "k1": round((60 + 99) / 180, 3),  # down from the old unit's death to the spare's start
        "k2": round(30 / 40, 3),  # up to its retirement
        "k4": round(179 / 180, 3),
    }


def _running(first: float, last: float) -> list[tuple[float, bool]]:
    """A running heartbeat a minute from ``first`` to ``last`` (Unix seconds, inclusive)."""
    return [(t, True) for t in map(float, range(int(first), int(last) + 1, 60))]


def test_a_kiosk_enrolled_part_way_through_is_measured_from_its_enrolment() -> None:
    """A kiosk installed on day 20 of a 28-day period was not down for the 20 days before it
    was there: its uptime is the share of its own time in service, from its first enrolment
    (a kiosk enrolled before the period is measured from the period's start)."""
    since, until = MON, MON + 28 * DAY
    day20 = since + 20 * DAY
    gap = [b for b in _running(day20, until - 60) if not day20 + DAY <= b[0] < day20 + 2 * DAY]
    out = figures(
        Inputs(
            since=since,
            until=until,
            heartbeats={
                "k1": _running(day20, until - 60),  # never down since it was installed
                "k2": gap,  # installed on day 20, down for a day of its 8
                "k3": _running(since, until - 60),  # enrolled long before the period
            },
            enrolled={"k1": day20, "k2": day20, "k3": since - 90 * DAY},
        )
    )
    assert out["uptime"] == {
        "k1": 1.0,
        "k2": round((DAY - 60 + 6 * DAY - 60) / (8 * DAY), 3),  # up before and after its gap
        "k3": 1.0,
    }


def test_a_unit_enrolled_again_after_a_retirement_does_not_restart_its_kiosks_time() -> None:
    """The in-service time of a device id starts at its first enrolment: a spare enrolled
    under the id after the first unit's retirement is the same kiosk, so the swap's gap is
    still its downtime and the time before the spare is not left out."""
    since, until = MON, MON + 28 * DAY
    first, died, retired = since + 10 * DAY, since + 15 * DAY, since + 16 * DAY
    spare = since + 17 * DAY
    out = figures(
        Inputs(
            since=since,
            until=until,
            heartbeats={"k1~1": _running(first, died), "k1": _running(spare, until - 60)},
            retired={"k1~1": ("k1", retired)},
            enrolled={"k1": first},  # the first unit's enrolment, not the spare's
        )
    )
    assert out["uptime"] == {"k1": round((5 * DAY + 11 * DAY - 60) / (18 * DAY), 3)}


def test_a_kiosk_enrolled_after_the_period_is_not_listed() -> None:
    """As one retired before the period: it was not in service then, so it has no uptime."""
    since, until = MON, MON + 7 * DAY
    out = figures(
        Inputs(
            since=since,
            until=until,
            heartbeats={"k1": _running(since, until - 60), "k2": []},
            enrolled={"k1": since - DAY, "k2": until + DAY},
        )
    )
    assert out["uptime"] == {"k1": 1.0}
