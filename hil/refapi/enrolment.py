"""The back office's half of fingerprint enrolment: a kiosk sends a signed ``finger_enrolment``
record and, sealed for the central API, the templates it took; an authorised person opens them
with the API's private key and puts them into the person's roster entry, each sealed to the
kiosk's roster key. The kiosk fetches the new roster and matches the person from then on.

    kiosk-refapi apply-enrolment WHERE --seal-key F --device ID --seq N --operator ID

The templates exist in clear only in this process's memory, between opening and re-sealing.

May import: the standard library, ``daemon.*``, ``hil.refapi.storage``.
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric import x25519

from daemon.records import decode_unverified
from daemon.sealing import open_enrolment, seal_template
from hil.refapi.storage import Storage


class EnrolmentNotApplied(Exception):
    """The enrolment cannot be applied; the message says why and what to do."""


def apply_enrolment(
    store: Storage, device: str, seq: int, seal_private: x25519.X25519PrivateKey
) -> tuple[str, list[str]]:
    """Put the templates of ``device``'s record ``seq`` into its stored roster. Returns the
    person's reference and the fingers applied. Raises EnrolmentNotApplied."""
    compact = next((c for _d, s, c in store.export(device) if s == seq), None)
    if compact is None:
        raise EnrolmentNotApplied(f"{device} has no stored record {seq}")
    payload = decode_unverified(compact)[1]
    if payload.get("type") != "finger_enrolment":
        raise EnrolmentNotApplied(f"record {seq} is a {payload.get('type')}, not an enrolment")
    detail = payload.get("detail") or {}
    if detail.get("consent") is not True or not payload.get("templates"):
        raise EnrolmentNotApplied(f"record {seq}: the person did not agree; nothing to apply")
    blob = store.get_blob(str(payload["templates"]))
    if blob is None:
        raise EnrolmentNotApplied("the sealed templates have not arrived yet; try after a sync")
    known = store.device(device)
    roster = store.get_roster(device)
    if known is None or roster is None:
        raise EnrolmentNotApplied(f"{device} has no roster to put the templates in")
    roster_public = base64.b64decode(known.roster_public_key)
    templates = open_enrolment(blob, seal_private)
    doc = json.loads(roster[1])
    person = next((p for p in doc.get("people", []) if p.get("ref") == payload["person"]), None)
    if person is None:
        raise EnrolmentNotApplied("the person is no longer on that kiosk's roster")
    person["templates"] = [
        {"finger": finger, "sealed": base64.b64encode(seal_template(t, roster_public)).decode()}
        for finger, t in sorted(templates.items())
    ]
    store.put_roster(device, json.dumps(doc).encode())
    return str(payload["person"]), sorted(templates)
