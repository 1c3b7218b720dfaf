"""The service's evaluation figures over a period (requirement 24 of the probation domain):
how kiosk reporting is working, from the signed records, the officers' decisions and the
kiosks' heartbeats, so the "no high-quality evidence" gap can be addressed rather than
repeated.

Pure: every input is passed in; nothing here reads a store or a clock.

May import: the standard library, ``daemon.records``, ``hil.refapi.missed``,
``hil.refapi.tasks``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hil.refapi.missed import ATTENDED, EARLY_S, HEARTBEAT_GAP_S, BootClock, appointment_times
from hil.refapi.tasks import (
    BY_CHOICE,
    ENGLAND_AND_WALES,
    REACHED,
    Calendar,
    Task,
    chose_alternative,
    tasks_of,
)

#: a visit counts as on time from 12 hours before the appointment to the end of its day
TARGET_S = 180.0  # the service's target for one visit: under three minutes
#: people who needed the fallback this often in the period: offer them re-enrolment (never
#: someone who chose not to give fingerprints: their route is not a fallback)
FALLBACK_REENROL = 3


@dataclass
class Inputs:
    """What the figures are computed from; times are Unix seconds."""

    since: float
    until: float
    #: (device, seq, payload, received) for every stored record
    records: Iterable[tuple[str, int, dict[str, Any], float]] = ()
    #: (device, seq) -> when the identity-review decision was recorded
    reviews: Mapping[tuple[str, int], float] = field(default_factory=dict)
    #: (device, seq, kind) -> (outcome, when) for tasks an officer closed
    outcomes: Mapping[tuple[str, int, str], tuple[str, float]] = field(default_factory=dict)
    #: device -> heartbeats as (received, whether it said the kiosk was running), any
    #: order: every enrolled kiosk (none yet is an empty list) and every retired chain
    heartbeats: Mapping[str, Sequence[tuple[float, bool]]] = field(default_factory=dict)
    #: retired chain (``<device>~<n>``) -> (its device id, when it was retired)
    retired: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    #: device id -> when it was first enrolled (its first chain's enrolment: a unit enrolled
    #: again under the id after a retirement does not restart it); a device id not here is
    #: taken to have been enrolled before the period
    enrolled: Mapping[str, float] = field(default_factory=dict)
    #: the decoded roster of each device (for the appointments due)
    rosters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the working days that tasks fall due on
    calendar: Calendar = ENGLAND_AND_WALES


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def declined_biometric(payload: dict[str, Any]) -> bool | None:
    """What a record says of the person's choice about fingerprints: True when they declined
    (a refusal at the kiosk's enrolment notice, or a visit by the route they chose), False when
    they use them (an agreement, a fingerprint match), None when it says neither. The newest
    record that says something is their choice, even before the roster carries it."""
    detail = payload.get("detail")
    if payload.get("type") == "finger_enrolment" and isinstance(detail, dict):
        consent = detail.get("consent")
        return (not consent) if isinstance(consent, bool) else None
    verify = payload.get("verify")
    method = verify.get("method") if isinstance(verify, dict) else None
    if method == BY_CHOICE:
        return True
    return False if method == "fingerprint" else None


def figures(inp: Inputs) -> dict[str, Any]:
    visits: list[tuple[dict[str, Any], float]] = []
    attended: dict[str, list[float]] = {}
    tasks: list[Task] = []
    #: person -> (when, declined) from the newest record that says
    choice: dict[str, tuple[float, bool]] = {}
    records = list(inp.records)
    boots = BootClock(payload for _d, _s, payload, _r in records)
    for device, seq, payload, received in records:
        when = boots.time_of(payload, received)
        person = payload.get("person")
        said = declined_biometric(payload) if isinstance(person, str) else None
        if (
            isinstance(person, str)
            and said is not None
            and when >= choice.get(person, (-1.0, False))[0]
        ):
            choice[person] = (when, said)
        if payload.get("type") in ATTENDED and isinstance(person, str):
            attended.setdefault(person, []).append(when)
            if inp.since <= when < inp.until:
                visits.append((payload, when))
        if inp.since <= received < inp.until:
            tasks.extend(tasks_of(device, seq, payload, received, inp.calendar))
    n = len(visits)
    methods = Counter(str((p.get("verify") or {}).get("method", "none")) for p, _ in visits)
    reviewed = [t for t in tasks if t.kind == "identity_review"]
    photo_checks = [t for t in tasks if t.kind == "photo_check"]
    by_choice = sum(chose_alternative(p) for p, _ in visits)
    durations = sorted(
        float(d)
        for p, _ in visits
        if isinstance(d := (p.get("detail") or {}).get("duration_s"), (int, float))
    )
    review_h = [
        (inp.reviews[(t.device, t.seq)] - t.received) / 3600
        for t in reviewed
        if (t.device, t.seq) in inp.reviews
    ]
    callbacks = [t for t in tasks if t.kind == "callback" and t.due <= inp.until]
    reached = [
        t
        for t in callbacks
        if (o := inp.outcomes.get((t.device, t.seq, t.kind))) and o[0] in REACHED and o[1] <= t.due
    ]
    declined = {ref for ref, (_when, said) in choice.items() if said}
    fallbacks = Counter(
        str(p["person"])
        for p, _ in visits
        if (p.get("verify") or {}).get("method") == "dob_photo" and p["person"] not in declined
    )
    due, on_time = _appointments(inp, attended)
    return {
        "since": inp.since,
        "until": inp.until,
        "visits": n,
        "by_method": dict(sorted(methods.items())),
        # of the visits where a fingerprint was expected: a chosen route is not a fallback
        "fallback_rate": _rate(methods.get("dob_photo", 0), n - by_choice),
        "by_choice_rate": _rate(by_choice, n),
        "manual_review_rate": _rate(
            sum("id_review" in (p.get("flags") or []) for p, _ in visits), n
        ),
        "duration_s": {
            "median": statistics.median(durations) if durations else None,
            "p90": durations[int(0.9 * (len(durations) - 1))] if durations else None,
            "under_target": _rate(sum(d < TARGET_S for d in durations), len(durations)),
        },
        "time_to_review_h": {
            "median": round(statistics.median(review_h), 1) if review_h else None,
            "reviewed": len(review_h),
            "waiting": len(reviewed) - len(review_h),
        },
        "photo_checks": {
            "sampled": len(photo_checks),
            "reviewed": sum((t.device, t.seq) in inp.reviews for t in photo_checks),
        },
        "callback_fulfilment": {
            "due": len(callbacks),
            "reached_in_time": len(reached),
            "rate": _rate(len(reached), len(callbacks)),
        },
        "on_time_rate": {"due": due, "on_time": on_time, "rate": _rate(on_time, due)},
        "uptime": _uptimes(inp),
        "falling_back": sorted(
            ({"ref": ref, "fallbacks": k} for ref, k in fallbacks.items() if k >= FALLBACK_REENROL),
            key=lambda r: (-int(r["fallbacks"]), str(r["ref"])),
        ),
    }


def _appointments(inp: Inputs, attended: Mapping[str, list[float]]) -> tuple[int, int]:
    """(appointments due in the period on the rosters, those attended on time): from 12 hours
    before the appointment to the end of its day, UTC. A person on two rosters (two kiosks of
    one office) counts once."""
    seen: set[tuple[str, str]] = set()
    due = on_time = 0
    for roster in inp.rosters.values():
        for person in roster.get("people", []):
            for at in appointment_times(person):
                when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
                key = (str(person.get("ref")), at)
                if key in seen or not inp.since <= when.timestamp() < inp.until:
                    continue
                seen.add(key)
                due += 1
                day_end = dt.datetime.combine(when.date() + dt.timedelta(days=1), dt.time(),
                                              tzinfo=when.tzinfo).timestamp()  # fmt: skip
                times = attended.get(str(person.get("ref")), [])
                on_time += any(when.timestamp() - EARLY_S <= t < day_end for t in times)
    return due, on_time


def _uptimes(inp: Inputs) -> dict[str, float]:
    """Each kiosk's uptime, by device id: the share of the time it was in service in the
    period covered by consecutive heartbeats (at most 5 minutes apart) that said it was
    running. A retired chain is not a kiosk of its own: the unit it was is the same kiosk's
    past, so its heartbeats count for its device id up to its retirement, and the time from
    its last one to the next unit's first is the kiosk's downtime. A device id is in service
    from its first enrolment (or the start of the period, whichever is later: a kiosk
    installed part-way through was not down before it was there, and a unit enrolled again
    after a retirement does not restart it) to the end of the period while it is enrolled,
    else to its last retirement (a kiosk taken away is not down); one retired before the
    period, or first enrolled after it, is not listed."""

    def start(device: str) -> float:
        return max(inp.since, inp.enrolled.get(device, inp.since))

    times: dict[str, list[float]] = {}
    end: dict[str, float] = {}
    for chain, beats in inp.heartbeats.items():
        device, stop = inp.retired.get(chain, (chain, inp.until))
        stop = min(stop, inp.until)
        end[device] = max(end.get(device, stop), stop)
        first = start(device)
        times.setdefault(device, []).extend(
            t for t, running in beats if first <= t < stop and running
        )
    return {
        device: _uptime(sorted(times[device]), start(device), end[device])
        for device in sorted(times)
        if end[device] > start(device)
    }


def _uptime(times: Sequence[float], since: float, until: float) -> float:
    """The share of ``since``..``until`` between consecutive ``times`` (in order) at most
    5 minutes apart."""
    up = sum(b - a for a, b in itertools.pairwise(times) if b - a <= HEARTBEAT_GAP_S)
    return round(up / (until - since), 3) if until > since else 0.0
