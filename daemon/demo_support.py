"""What the demo (and the end-to-end tests) need around a kiosk: a reference API on loopback,
a provisioned simulated device, a roster of synthetic people, and a summary of what reached
the API. Everything lives in one folder (``.demo/`` for ``make demo``).

Synthetic data only: case references ``CR-9xxxxx``, made-up dates of birth, no names.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from daemon.errors import RecordError
from daemon.keys import FileKeyBackend, public_pem
from daemon.kioskctl.identity import Enrolment, save_enrolment
from daemon.records import receipt_code, verify_chain
from daemon.sealing import RosterKey, public_to_b64, roster_key_path, seal_template
from hil.refapi.server import RefApi


@dataclass(frozen=True)
class Person:
    ref: str
    dob: str
    finger: int = 2  # right index
    questions: tuple[dict[str, Any], ...] = ()
    messages: tuple[dict[str, str], ...] = ()


PEOPLE = (
    Person("CR-900101", "1990-04-12"),
    Person(
        "CR-900102",
        "1985-11-30",
        messages=(
            {
                "id": "m1",
                "en": "Please bring your payslips to your next appointment.",
                "cy": "Dewch â'ch slipiau cyflog i'ch apwyntiad nesaf, os gwelwch yn dda.",
            },
        ),
    ),
    Person("CR-900103", "1979-02-02"),
    Person(
        "CR-900104",
        "2001-07-19",
        questions=(
            {
                "id": "course_attended",
                "en": "Did you go to your course this week?",
                "cy": "Aethoch chi i'ch cwrs yr wythnos hon?",
                "kind": "yes_no",
                "flag_if": "no",
            },
        ),
    ),
    Person("CR-900105", "1995-09-09"),
)


#: the demo kiosk's staff PIN (synthetic; its PBKDF2 hash goes into kiosk.toml)
STAFF_PIN = "2468"


def dob_hmac(salt: bytes, dob: str) -> str:
    return base64.b64encode(hmac.new(salt, dob.encode(), hashlib.sha256).digest()).decode()


@dataclass
class DemoDevice:
    id: str
    folder: Path
    config_path: Path
    data_dir: Path
    key: FileKeyBackend


def provision(api: RefApi, folder: Path, device: str = "kiosk-demo-01", *, time_scale: float = 0.02,
              extra: str = "") -> DemoDevice:  # fmt: skip
    """Create the device's keys, enrol it with the API, record the enrolment
    (``enrolment.json``) and write its kiosk.toml (simulated hardware, explicitly allowed):
    what ``kioskctl provision`` leaves, except the first ``enrolment`` record, which the demo
    leaves out so that its morning's records start at seq 1."""
    from daemon.kiosk import hash_pin

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    kb = FileKeyBackend(data / "device-key.pem")
    key = kb.create()
    roster = RosterKey.create(roster_key_path(kb.path))
    r = httpx.post(
        api.url + "v1/enrol",
        json={
            "code": api.mint_code(),
            "device_id": device,
            "alg": key.alg,
            "public_key_pem": public_pem(key.public_key()),
            "roster_public_key": public_to_b64(roster.public_bytes()),
        },
        verify=ssl.create_default_context(cafile=str(api.ca)),
        timeout=30,
    )
    r.raise_for_status()
    answer = r.json()
    # what `kioskctl provision` leaves beside the keys: doctor's "key enrolment" row and
    # `kioskctl outbox verify` read the enrolled public key from it
    save_enrolment(
        data,
        Enrolment(device=device, api_url=api.url, alg=key.alg,
                  public_key_pem=public_pem(key.public_key()), enrolled_at=time.time()),
    )  # fmt: skip
    ca = folder / "api-ca.pem"
    ca.write_text(answer["api_ca_pem"])
    cfg = folder / "kiosk.toml"
    cfg.write_text(
        f"""# written by the demo: a simulated kiosk (see docs/configuration.md)
[device]
id = "{device}"
data_dir = "{data}"
allow_simulated = true
office = "demo-office"

[api]
url = "{api.url}"
ca_bundle = "{ca}"
seal_public_key = "{answer["seal_public_key"]}"
batch_size = 100
backoff_base_s = 0.2
backoff_cap_s = 2.0
heartbeat_s = 1.0
roster_s = 2.0

[fingerprint]
backend = "emulator"
emulator_time_scale = {time_scale}
finger_timeout_s = 3.0

[camera]
backend = "simulated"

[gpio]
backend = "mock"

[display]
backend = "simulated"

[printer]
backend = "simulated"

[staff]
pin_hash = "{hash_pin(STAFF_PIN, 20_000)}"
{extra}"""
    )
    return DemoDevice(device, folder, cfg, data, kb)


def appointment_at(today: dt.date | None = None) -> str:
    """The synthetic people's next appointment: 10:30 UK time on the Monday at least a week
    after ``today`` (the real date by default), as the roster sends it (RFC 3339, UTC). Always
    ahead, so the kiosk shows it whatever day the demo or a test runs."""
    from daemon.ui.present import display_tz

    day = today or dt.date.today()
    monday = day + dt.timedelta(days=7 + (-day.weekday()) % 7)
    local = dt.datetime.combine(monday, dt.time(10, 30), tzinfo=display_tz())
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish_roster(
    api: RefApi,
    device: DemoDevice,
    people: tuple[Person, ...] = PEOPLE,
    *,
    not_enrolled: frozenset[str] = frozenset(),
) -> None:
    """What the probation service's back office does: the people due at this kiosk, their
    templates sealed to the device's roster key, their next appointments and messages."""
    from hil.fingerprint.fingers import make_template
    from hil.fingerprint.models import model

    with api.admin() as admin:
        status = admin.get(f"/v1/admin/devices/{device.id}")
        status.raise_for_status()
        roster_pub = base64.b64decode(status.json()["roster_public_key"])
    salt = os.urandom(16)
    size = model("R503").template_size
    roster = {
        "office": "demo-office",
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dob_salt": base64.b64encode(salt).decode(),
        "people": [
            {
                "ref": p.ref,
                "dob_hmac": dob_hmac(salt, p.dob),
                "templates": []
                if p.ref in not_enrolled  # no fingerprints on file yet (never enrolled)
                else [
                    {
                        "finger": "right_index",
                        "sealed": base64.b64encode(
                            seal_template(make_template(p.ref, p.finger, size), roster_pub)
                        ).decode(),
                    }
                ],
                "appointments": [
                    {
                        "at": appointment_at(),
                        "place_en": "Room 2, ground floor",
                        "place_cy": "Ystafell 2, llawr gwaelod",
                    }
                ],
                "messages": list(p.messages),
                "questions": list(p.questions),
            }
            for p in people
        ],
    }
    with api.admin() as admin:
        admin.put(
            f"/v1/admin/devices/{device.id}/roster", content=json.dumps(roster)
        ).raise_for_status()


@dataclass(frozen=True)
class Summary:
    created: int
    synced: int
    verified: int
    chain_intact: bool
    by_type: dict[str, int]
    flagged: int
    #: (check-ins whose attendance reference the API finds, check-ins with a reference)
    receipts: tuple[int, int] = (0, 0)
    #: (heartbeats the API received from the kiosk, those saying the check-in process ran)
    heartbeats: tuple[int, int] = (0, 0)

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_type.items()))
        return [
            f"records created on the kiosk : {self.created}",
            f"records synced to the API    : {self.synced}",
            f"verified by the API (sig+chain): {self.verified}",
            f"chain intact                 : {'yes' if self.chain_intact else 'NO'}",
            f"by type                      : {kinds}",
            f"flagged for an officer       : {self.flagged}",
            f"attendance references found  : {self.receipts[0]} of {self.receipts[1]} "
            "(GET /v1/admin/receipts/{code})",
            f"heartbeats received          : {self.heartbeats[0]}, {self.heartbeats[1]} of them "
            "with the kiosk running",
        ]


def summarise(api: RefApi, device: DemoDevice, created: int) -> Summary:
    store = api.storage()
    try:
        compacts = [c for _d, _s, c in store.export(device.id)]
        beats = store.heartbeat_states(device.id, limit=10_000)
    finally:
        store.close()
    intact = True
    records = []
    try:
        records = verify_chain(compacts, device.key.load().public_key(), device.id,
                               head_seq=created)  # fmt: skip
    except RecordError:  # reported, not raised: the summary says "NO"
        intact = False
    by_type: dict[str, int] = {}
    flagged = 0
    for r in records:
        by_type[r.type] = by_type.get(r.type, 0) + 1
        flagged += bool(r.payload.get("flags"))
    people = [r for r in records if r.payload.get("person")]
    found = 0
    with api.admin() as admin:  # what a person quoting the code on their screen gets
        for r in people:
            answer = admin.get(f"/v1/admin/receipts/{receipt_code(r.compact)}")
            found += answer.status_code == 200 and any(
                x["seq"] == r.seq for x in answer.json()["records"]
            )
    running = sum(up for _received, up in beats)
    return Summary(created, len(compacts), len(records), intact, by_type, flagged,
                   (found, len(people)), (len(beats), running))  # fmt: skip
