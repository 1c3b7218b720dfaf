"""Retention at the central API (requirement 18; docs/privacy.md): which stored blobs and
heartbeats are due for deletion, and ``prune`` that deletes them.

Signed records are never deleted: they are the audit trail (and hold no image or template,
only the hash naming one). What goes:

- a **check-in photo** whose record was not sent for identity review: ``photo_days`` after it
  arrived (28 by default, as long as the HMPPS online check-in service keeps images that
  did not match);
- a **photo sent for identity review** (the record's ``id_review`` flag): kept while the review
  is undecided, then ``reviewed_days`` after a ``confirmed`` decision and ``concern_days``
  after ``confirmed_with_concern`` or ``rejected`` (about 6 years: the evidence of a
  possible proxy check-in, as HMPPS keeps "match with concern" media). A decision recorded on
  a record that was not flagged holds its photo the same way;
- **sealed enrolment templates**: deleted as soon as ``apply-enrolment`` has put them in the
  rosters (hil/refapi/enrolment.py), else ``enrolment_days`` after they arrived (the kiosk
  can enrol the person again);
- a blob **no record names** (its record never arrived): ``unreferenced_days`` after it did;
- **heartbeats**: ``heartbeat_days``, but each kiosk's newest is kept (its status still says
  when it was last heard from).

Each removed blob leaves a note (``removed_blobs``: kind, reason, when) so the API answers
``410`` for it and never stores it again, and each run is one line of the access log.

May import: the standard library, ``daemon.records``, ``hil.refapi.storage``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from daemon.errors import RecordError
from daemon.records import decode_unverified
from hil.refapi.storage import AccessEntry, BlobHold, Storage

DAY_S = 86_400.0
#: the record flag that sends a check-in's photo to a person for the manual identity check
REVIEW_FLAG = "id_review"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of stored data is kept (docs/privacy.md gives the reasons)."""

    photo_days: float = 28
    reviewed_days: float = 28
    concern_days: float = 2192
    enrolment_days: float = 14
    unreferenced_days: float = 28
    heartbeat_days: float = 30

    def __post_init__(self) -> None:
        for name, days in asdict(self).items():
            if not 0 <= days <= 36_500:
                raise ValueError(f"{name} must be between 0 and 36500 days, not {days}")

    def after_review(self, outcome: str) -> float:
        return self.reviewed_days if outcome == "confirmed" else self.concern_days

    @property
    def shortest_days(self) -> float:
        return min(self.photo_days, self.reviewed_days, self.concern_days,
                   self.enrolment_days, self.unreferenced_days)  # fmt: skip


@dataclass
class PruneReport:
    """What a run removed (or, in a dry run, would remove): counts only, no hashes."""

    photos: int = 0
    enrolments: int = 0
    unreferenced: int = 0
    heartbeats: int = 0
    #: photos kept only because their identity review is undecided
    awaiting_review: int = 0
    dry_run: bool = False
    due: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    def counts(self) -> dict[str, int | bool]:
        return {k: v for k, v in asdict(self).items() if k != "due"}


def photo_due(hold: BlobHold, policy: RetentionPolicy) -> float | None:
    """When a photo blob may go (Unix seconds), or None while an identity review that would
    look at it is undecided. A photo named by several records goes when all let it."""
    due = 0.0
    for received, flags, outcome, decided in hold.photo_of:
        start = max(received, hold.received)
        until = start + policy.photo_days * DAY_S
        if outcome is not None and decided is not None:
            until = max(until, max(decided, hold.received) + policy.after_review(outcome) * DAY_S)
        elif REVIEW_FLAG in flags:
            return None
        due = max(due, until)
    return due


def enrolment_blobs(rows: Iterable[tuple[str, int, str, float]]) -> dict[str, float]:
    """The sealed template blob each enrolment record names, with when that record arrived."""
    found: dict[str, float] = {}
    for _device, _seq, compact, received in rows:
        try:
            payload = decode_unverified(compact)[1]
        except RecordError:
            continue
        sha = payload.get("templates")
        if isinstance(sha, str) and sha:
            found[sha.lower()] = max(found.get(sha.lower(), 0.0), received)
    return found


def due_blobs(
    store: Storage, policy: RetentionPolicy, now: float
) -> tuple[list[tuple[str, str, str]], int]:
    """(the blobs due for removal as (sha, kind, reason), how many photos wait on a review).
    Only blobs older than the shortest period can be due, so only those are read."""
    holds = store.blob_holds(now - policy.shortest_days * DAY_S)
    templates = enrolment_blobs(store.enrolments()) if holds else {}
    due: list[tuple[str, str, str]] = []
    waiting = 0
    for hold in holds:
        if hold.sha256 in templates:
            start = max(hold.received, templates[hold.sha256])
            if now >= start + policy.enrolment_days * DAY_S:
                due.append((hold.sha256, "enrolment", "retention"))
        elif hold.photo_of:
            until = photo_due(hold, policy)
            if until is None:
                waiting += 1
            elif now >= until:
                due.append((hold.sha256, "photo", "retention"))
        elif now >= hold.received + policy.unreferenced_days * DAY_S:
            due.append((hold.sha256, "unreferenced", "retention"))
    return due, waiting


def prune(
    store: Storage,
    policy: RetentionPolicy,
    now: float,
    operator: str,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """Delete what the policy says is due (blobs, old heartbeats; never a record) and log
    the run in the access log under ``operator``. ``dry_run`` only counts."""
    due, waiting = due_blobs(store, policy, now)
    report = PruneReport(awaiting_review=waiting, dry_run=dry_run, due=due)
    kinds = [kind for _sha, kind, _reason in due]
    if not dry_run:
        # a blob another run removed meanwhile, or an "unreferenced" one a record has named
        # since, is not removed here: count what went
        removed = set(store.remove_blobs(due, now)) if due else set()
        kinds = [kind for sha, kind, _reason in due if sha in removed]
        report.heartbeats = store.prune_heartbeats(now - policy.heartbeat_days * DAY_S)
    report.photos = kinds.count("photo")
    report.enrolments = kinds.count("enrolment")
    report.unreferenced = kinds.count("unreferenced")
    store.log_access(
        AccessEntry(
            at=now,
            operator=operator,
            via="cli",
            action="retention.prune",
            outcome="dry_run" if dry_run else "ok",
            detail={**report.counts(), "policy": asdict(policy)},
        )
    )
    return report
