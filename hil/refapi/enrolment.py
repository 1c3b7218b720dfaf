"""The back office's half of fingerprint enrolment: a kiosk sends a signed ``finger_enrolment``
record and, sealed for the central API, the templates it took; an authorised person opens them
with the API's private key and puts them into the person's roster entry, each sealed to the
kiosk's roster key, on that kiosk and on every other kiosk of the same office that expects the
person. The kiosks fetch the new rosters and match the person from then on.

    kiosk-refapi apply-enrolment WHERE --seal-key F --device ID --seq N --operator ID

The same command applied to a **refusal** (the person said "no, thank you" at the kiosk's
notice: ``consent: false``, no templates, no key needed) marks the person
``biometric: "declined"`` in those rosters and takes out any templates they had: the kiosks then
check them in by date of birth and photo as their own route, never ask for a finger, and their
visits are not identity reviews (docs/privacy.md). An agreement applied later clears the mark.

The templates exist in clear only in this process's memory, between opening and re-sealing.
Once they are in the rosters the sealed blob is deleted (retention, hil/refapi/retention.py);
every attempt, applied or not, is a line of the access log naming the operator.

May import: the standard library, ``daemon.*``, ``hil.refapi.storage``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import x25519

from daemon.records import decode_unverified
from daemon.sealing import open_enrolment, seal_template
from hil.refapi.storage import AccessEntry, Storage, device_of_chain

#: a kiosk's roster entry for a person: (roster document, the entry, ...what else is needed)
_Found = tuple[Any, ...]


class EnrolmentNotApplied(Exception):
    """The enrolment cannot be applied; the message says why and what to do."""


class SealKeyNeeded(EnrolmentNotApplied):
    """An agreement's templates can only be opened with the API's sealing key."""


class Applied(NamedTuple):
    ref: str  # the person's reference
    fingers: list[str]  # the fingers put in the rosters (none for a refusal)
    devices: list[str]  # the kiosks whose rosters changed, the enrolling kiosk first
    declined: bool = False  # a refusal: the rosters now say ``biometric: "declined"``


def apply_enrolment(
    store: Storage,
    device: str,
    seq: int,
    seal_private: x25519.X25519PrivateKey | None,
    *,
    operator: str,
    clock: Callable[[], float] = time.time,
) -> Applied:
    """Put the templates of ``device``'s record ``seq`` into its stored roster, and into the
    roster of every other kiosk of the same office (the roster's ``office``) that lists the
    person: someone enrolled at one kiosk of a lobby is matched by the one beside it. Each
    kiosk gets its own copy, sealed to its own roster key. Then delete the sealed blob: the
    rosters hold the templates now. A refusal record (``consent: false``) instead marks the
    person ``biometric: "declined"`` in the same rosters and removes any templates (no key is
    needed: nothing is opened). ``operator`` (a staff id) goes in the access log with the
    outcome, never a template or the person's reference. Raises EnrolmentNotApplied
    (SealKeyNeeded for an agreement without ``seal_private``)."""
    entry = AccessEntry(clock(), operator, "cli", "enrolment.apply", device=device, seq=seq)
    try:
        applied = _apply(store, device, seq, seal_private, clock)
    except Exception as exc:
        why = "not_applied" if isinstance(exc, EnrolmentNotApplied) else "failed"
        store.log_access(replace(entry, outcome=why))
        raise
    counts: dict[str, object] = {"fingers": len(applied.fingers), "kiosks": len(applied.devices)}
    if applied.declined:
        counts["declined"] = True
    store.log_access(replace(entry, detail=counts))
    return applied


def _apply(
    store: Storage,
    device: str,
    seq: int,
    seal_private: x25519.X25519PrivateKey | None,
    clock: Callable[[], float],
) -> Applied:
    compact = next((c for _d, s, c in store.export(device) if s == seq), None)
    if compact is None:
        raise EnrolmentNotApplied(f"{device} has no stored record {seq}")
    payload = decode_unverified(compact)[1]
    if payload.get("type") != "finger_enrolment":
        raise EnrolmentNotApplied(f"record {seq} is a {payload.get('type')}, not an enrolment")
    detail = payload.get("detail") or {}
    if detail.get("consent") is False:
        # like an agreement, a refusal made on a unit since retired goes to its id's roster
        return _apply_refusal(store, device_of_chain(device), str(payload["person"]))
    if detail.get("consent") is not True or not payload.get("templates"):
        raise EnrolmentNotApplied(f"record {seq}: it holds neither an agreement nor a refusal")
    if seal_private is None:
        raise SealKeyNeeded("the API's sealing key is needed to open an enrolment (--seal-key)")
    sha = str(payload["templates"]).lower()
    blob = store.get_blob(sha)
    if blob is None:
        removed = store.blob_removed(sha)
        if removed is not None and removed["reason"] == "applied":
            raise EnrolmentNotApplied(
                f"record {seq} was applied already (its sealed templates were then deleted)"
            )
        if removed is not None:
            raise EnrolmentNotApplied(
                f"record {seq}: its sealed templates were removed under the retention policy "
                "before they were applied; enrol the person at the kiosk again"
            )
        raise EnrolmentNotApplied("the sealed templates have not arrived yet; try after a sync")
    ref = str(payload["person"])
    # an enrolment made on a unit since retired (``<device>~<n>``) goes to its id's roster
    home = device_of_chain(device)
    targets = list(_office_entries(store, home, ref, _roster_entry))
    templates = open_enrolment(blob, seal_private)
    applied = []
    for target, (doc, person, roster_public) in targets:
        person["templates"] = [
            {"finger": finger, "sealed": base64.b64encode(seal_template(t, roster_public)).decode()}
            for finger, t in sorted(templates.items())
        ]
        person.pop("biometric", None)  # they agreed: a refusal applied before no longer stands
        store.put_roster(target, json.dumps(doc).encode())
        applied.append(target)
    # the rosters hold the templates now, sealed to each kiosk: the copy for the API goes
    store.remove_blobs([(sha, "enrolment", "applied")], clock())
    return Applied(ref, sorted(templates), applied)


def _apply_refusal(store: Storage, device: str, ref: str) -> Applied:
    """The person said no at the notice: ``biometric: "declined"`` and no templates in the
    entry of every roster of the office that lists them (the enrolling kiosk's must)."""
    changed = []
    for target, (doc, person) in list(_office_entries(store, device, ref, _roster_person)):
        person["biometric"] = "declined"
        person["templates"] = []  # a "no" withdraws any fingerprints given before
        store.put_roster(target, json.dumps(doc).encode())
        changed.append(target)
    return Applied(ref, [], changed, declined=True)


def _office_entries(
    store: Storage, home: str, ref: str, find: Callable[[Storage, str, str], _Found | str]
) -> Iterator[tuple[str, _Found]]:
    """``find(store, device, ref)`` for ``home`` (EnrolmentNotApplied when it has no entry for
    the person), then for every other kiosk of the same office whose roster lists them: an
    enrolment or a refusal holds office-wide (a lobby's kiosks all expect the person)."""
    own = find(store, home, ref)
    if isinstance(own, str):
        raise EnrolmentNotApplied(own)
    yield home, own
    office = own[0].get("office")
    for device in store.devices() if office else []:
        found = find(store, device, ref) if device != home else None
        if found is not None and not isinstance(found, str) and found[0].get("office") == office:
            yield device, found


def _roster_person(
    store: Storage, device: str, ref: str
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """(roster document, the person's entry in it), or why not."""
    roster = store.get_roster(device)
    if store.device(device) is None or roster is None:
        return f"{device} has no roster to change"
    doc = json.loads(roster[1])
    person = next((p for p in doc.get("people", []) if p.get("ref") == ref), None)
    if person is None:
        return f"the person is no longer on the roster of {device}"
    return doc, person


def _roster_entry(
    store: Storage, device: str, ref: str
) -> tuple[dict[str, Any], dict[str, Any], bytes] | str:
    """(roster document, the person's entry in it, roster public key), or why not."""
    known = store.device(device)
    if known is None or not known.roster_public_key or store.get_roster(device) is None:
        return f"{device} has no roster to put the templates in"
    found = _roster_person(store, device, ref)
    if isinstance(found, str):
        return found
    return *found, base64.b64decode(known.roster_public_key)
