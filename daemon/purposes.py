"""Who consults personal data, and why: the words both the kiosk and the central API log.

DPA 2018 s.62 asks that the log of each consultation of personal data make establishable who
did it, when, and its justification. ``OPERATOR_ID`` is who (a staff number or a service's
id, never a name); ``PURPOSES`` is why, a fixed list, so a log never holds free text that
could carry personal data and consultations can be counted by reason.

May import: the standard library.
"""

from __future__ import annotations

import argparse
import re

#: an operator's identity in the access log: a staff number or a service's name, never a name
OPERATOR_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
#: why personal data is consulted, for the access log: DPA 2018 s.62(3) asks that the log make
#: the *justification* of each consultation establishable, not only who and when. A fixed list,
#: so the log never holds free text (which could carry personal data) and can be counted.
PURPOSES: dict[str, str] = {
    "supervision": "an officer's work on their own cases (messages, appointments, contact)",
    "identity_review": "checking who attended: photos, visits without a fingerprint match",
    "task": "acting on an officer's task: a callback, a flagged answer, a fault follow-up, a "
    "missed appointment",
    "audit": "checking the records and how they were handled",
    "subject_access": "answering a person's request for their own data (DPA 2018 s.45)",
    "incident": "investigating a complaint, a fault or a security incident",
    "evaluation": "the service's evaluation figures",
    "maintenance": "running the service: enrolling or retiring kiosks, retention",
}


def operator_id(text: str) -> str:
    """``argparse`` type for ``--operator``: an :data:`OPERATOR_ID`, never a name."""
    if not OPERATOR_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "must be a staff number or service id (a-z, 0-9, '.', '_', '-'; up to 32), never a name"
        )
    return text
