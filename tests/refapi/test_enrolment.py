"""The back office applies a kiosk's fingerprint enrolment (``kiosk-refapi apply-enrolment``):
to that kiosk's roster and to every other kiosk of the same office that expects the person,
each copy sealed to its own kiosk's roster key; the API's sealed copy is then deleted. Both
storage backends."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from daemon.records import decode_unverified
from daemon.sealing import PhotoSealer, RosterKey, SealedBlobError, public_bytes
from hil.refapi import __main__ as cli
from hil.refapi.__main__ import main
from hil.refapi.retention import DAY_S, RetentionPolicy, prune
from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.conftest import FakeClock

PERSON = "CR-700001"  # synthetic
TEMPLATES = {
    "left_index": b"\x03\x01" + bytes(510),
    "right_index": b"\x03\x01" + bytes(range(256)) * 2,
}


class Kiosk:
    """An enrolled device with its own roster key and a published roster."""

    def __init__(self, api: InProcess, office: str | None, people: list[str]) -> None:
        self.dev = SimDevice(clock=api.settings.clock)
        self.roster_key = RosterKey(x25519.X25519PrivateKey.generate())
        code = secrets.token_urlsafe(12)
        api.storage.add_code(code, api.settings.clock() + 60)
        api.storage.enrol(
            code,
            self.dev.device,
            self.dev.alg,
            self.dev.public_pem,
            api.settings.clock(),
            roster_public_key=base64.b64encode(self.roster_key.public_bytes()).decode(),
        )
        doc: dict[str, object] = {"people": [{"ref": p, "templates": []} for p in people]}
        if office is not None:
            doc["office"] = office
        api.storage.put_roster(self.dev.device, json.dumps(doc).encode())

    def roster(self, api: InProcess) -> bytes:
        got = api.storage.get_roster(self.dev.device)
        assert got is not None
        return got[1]

    def templates_of(self, api: InProcess, ref: str) -> dict[str, bytes]:
        """What this kiosk can open of the person's roster templates, with its own key."""
        doc = json.loads(self.roster(api))
        person = next(p for p in doc["people"] if p["ref"] == ref)
        return {
            t["finger"]: self.roster_key.open_template(base64.b64decode(t["sealed"]))
            for t in person["templates"]
        }


@pytest.fixture
def seal_key(tmp_path: Path) -> tuple[Path, PhotoSealer]:
    """The central API's sealing key (raw 32 bytes, as `kiosk-refapi` keeps it) and the
    kiosk-side sealer for it."""
    private = x25519.X25519PrivateKey.generate()
    path = tmp_path / "seal.key"
    path.write_bytes(private.private_bytes_raw())
    path.chmod(0o600)
    return path, PhotoSealer(public_bytes(private.public_key()))


async def _enrolment_at(api: InProcess, kiosk: Kiosk, sealer: PhotoSealer, **detail: object) -> int:
    """The kiosk sends a signed finger_enrolment record and the sealed templates it names."""
    sealed = sealer.seal_enrolment(TEMPLATES)
    api.storage.put_blob(sealed.sha256, kiosk.dev.device, sealed.blob, api.settings.clock())
    record = kiosk.dev.next_record(
        type="finger_enrolment",
        person=PERSON,
        templates=sealed.sha256,
        detail={"consent": True, "fingers": sorted(TEMPLATES)} | detail,
    )
    r = await api.push(kiosk.dev, [record])
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "accepted", r.text
    return kiosk.dev.seq


def _apply(
    api: InProcess, key: Path, kiosk: Kiosk, seq: int, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = main(
        ["apply-enrolment", *api.where(), "--seal-key", str(key), "--device", kiosk.dev.device,
         "--seq", str(seq), "--operator", "staff-0042"]
    )  # fmt: skip
    return code, capsys.readouterr().err


async def test_an_enrolment_reaches_every_kiosk_of_the_office_that_expects_the_person(
    api: InProcess, seal_key: tuple[Path, PhotoSealer], capsys: pytest.CaptureFixture[str]
) -> None:
    key, sealer = seal_key
    here = Kiosk(api, "cardiff", [PERSON, "CR-700002"])
    beside = Kiosk(api, "cardiff", ["CR-700003", PERSON])
    not_expecting = Kiosk(api, "cardiff", ["CR-700004"])
    elsewhere = Kiosk(api, "swansea", [PERSON])
    untouched = {k: k.roster(api) for k in (not_expecting, elsewhere)}
    seq = await _enrolment_at(api, here, sealer)

    code, err = _apply(api, key, here, seq, capsys)

    assert code == 0, err
    assert here.dev.device in err and beside.dev.device in err
    assert PERSON not in err  # the person's reference is shortened in the operator's output
    assert here.templates_of(api, PERSON) == TEMPLATES
    assert beside.templates_of(api, PERSON) == TEMPLATES  # the kiosk next to it matches too
    assert beside.templates_of(api, "CR-700003") == {}  # nobody else's entry changed
    for kiosk, before in untouched.items():
        assert kiosk.roster(api) == before  # another office, or not expected there
    # each copy is sealed to its own kiosk: one kiosk's key cannot open the other's
    beside_doc = json.loads(beside.roster(api))
    sealed = next(p for p in beside_doc["people"] if p["ref"] == PERSON)["templates"][0]
    with pytest.raises(SealedBlobError):
        here.roster_key.open_template(base64.b64decode(sealed["sealed"]))


async def test_a_kiosk_whose_roster_names_no_office_keeps_the_enrolment_to_itself(
    api: InProcess, seal_key: tuple[Path, PhotoSealer], capsys: pytest.CaptureFixture[str]
) -> None:
    key, sealer = seal_key
    here = Kiosk(api, None, [PERSON])
    other = Kiosk(api, None, [PERSON])
    before = other.roster(api)
    seq = await _enrolment_at(api, here, sealer)

    code, err = _apply(api, key, here, seq, capsys)

    assert code == 0, err
    assert here.templates_of(api, PERSON) == TEMPLATES
    assert other.roster(api) == before


async def test_what_cannot_be_applied_says_why_and_changes_no_roster(
    api: InProcess, seal_key: tuple[Path, PhotoSealer], capsys: pytest.CaptureFixture[str]
) -> None:
    key, sealer = seal_key
    here = Kiosk(api, "cardiff", [PERSON])
    beside = Kiosk(api, "cardiff", [PERSON])
    checkin = here.dev.next_record()
    assert (await api.push(here.dev, [checkin])).status_code == 200
    rosters = [k.roster(api) for k in (here, beside)]

    code, err = _apply(api, key, here, here.dev.seq, capsys)
    assert code == 1 and "not an enrolment" in err
    code, err = _apply(api, key, here, 99, capsys)
    assert code == 1 and "no stored record 99" in err
    assert [k.roster(api) for k in (here, beside)] == rosters

    # the kiosk that took the enrolment no longer expects the person: nothing is applied
    # anywhere, even where the person is still expected
    seq = await _enrolment_at(api, here, sealer)
    api.storage.put_roster(
        here.dev.device, json.dumps({"office": "cardiff", "people": []}).encode()
    )
    code, err = _apply(api, key, here, seq, capsys)
    assert code == 1 and "no longer on the roster" in err
    assert beside.roster(api) == rosters[1]


async def _refusal_at(api: InProcess, kiosk: Kiosk) -> int:
    """The person said "no, thank you" at the kiosk's notice: a signed record, no blob."""
    record = kiosk.dev.next_record(
        type="finger_enrolment", person=PERSON, detail={"consent": False, "staff": "rec-1"}
    )
    assert (await api.push(kiosk.dev, [record])).json()["results"][0]["status"] == "accepted"
    return kiosk.dev.seq


def _person_in(api: InProcess, kiosk: Kiosk, ref: str = PERSON) -> dict[str, object]:
    doc = json.loads(kiosk.roster(api))
    return dict(next(p for p in doc["people"] if p["ref"] == ref))


async def test_a_refusal_at_the_kiosk_becomes_the_declined_route_on_every_kiosk_of_the_office(
    api: InProcess, seal_key: tuple[Path, PhotoSealer], capsys: pytest.CaptureFixture[str]
) -> None:
    """The signed refusal record is enough: no key (nothing is opened), and the person is
    marked ``biometric: "declined"`` wherever their office expects them, any templates they
    gave before withdrawn; the kiosks then never ask them for a finger. An agreement applied
    later (they changed their mind) clears the mark. Logged under the operator."""
    key, sealer = seal_key
    here = Kiosk(api, "cardiff", [PERSON, "CR-700002"])
    beside = Kiosk(api, "cardiff", [PERSON])
    elsewhere = Kiosk(api, "swansea", [PERSON])
    untouched = elsewhere.roster(api)
    agreed = await _enrolment_at(api, here, sealer)
    assert _apply(api, key, here, agreed, capsys)[0] == 0
    assert beside.templates_of(api, PERSON) == TEMPLATES
    refused = await _refusal_at(api, here)

    code = main(["apply-enrolment", *api.where(), "--device", here.dev.device,
                 "--seq", str(refused), "--operator", "staff-0042"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "refusal applied" in err and PERSON not in err
    for kiosk in (here, beside):
        assert _person_in(api, kiosk)["biometric"] == "declined"
        assert kiosk.templates_of(api, PERSON) == {}  # withdrawn, not only unused
    assert "biometric" not in _person_in(api, here, "CR-700002")  # nobody else's entry
    assert elsewhere.roster(api) == untouched  # another office
    # what the back office wrote is what a kiosk reads as the chosen route
    from daemon.roster import parse_roster

    doc = json.loads(here.roster(api))
    doc |= {
        "generated_at": "2026-11-23T08:00:00Z",
        "dob_salt": base64.b64encode(bytes(16)).decode(),
    }
    for p in doc["people"]:
        p["dob_hmac"] = base64.b64encode(bytes(32)).decode()  # the test roster had none
    assert parse_roster(doc).find(PERSON).declined_biometric  # type: ignore[union-attr]

    # an agreement without the key cannot be opened: exit 2, nothing changes
    again = await _enrolment_at(api, here, sealer)
    code = main(["apply-enrolment", *api.where(), "--device", here.dev.device,
                 "--seq", str(again), "--operator", "staff-0042"])  # fmt: skip
    assert code == 2 and "--seal-key" in capsys.readouterr().err
    assert _person_in(api, here)["biometric"] == "declined"
    assert _apply(api, key, here, again, capsys)[0] == 0  # with it: they changed their mind
    assert "biometric" not in _person_in(api, here) and "biometric" not in _person_in(api, beside)
    assert here.templates_of(api, PERSON) == TEMPLATES
    applies = [e for e in api.storage.access_log() if e["action"] == "enrolment.apply"]
    assert [(e["seq"], e["outcome"]) for e in applies] == [
        (agreed, "ok"), (refused, "ok"), (again, "not_applied"), (again, "ok")]  # fmt: skip
    assert applies[1]["detail"] == {"fingers": 0, "kiosks": 2, "declined": True}
    assert PERSON not in json.dumps(api.storage.access_log())


async def test_applied_templates_are_deleted_and_unapplied_ones_go_after_14_days(
    api: InProcess,
    seal_key: tuple[Path, PhotoSealer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Retention: the API's sealed copy of an enrolment goes once the rosters hold it, or
    after 14 days if nobody applies it; either way the operator is told why it is gone, and
    every attempt is in the access log under the operator, without the person's reference."""
    clock = api.settings.clock
    assert isinstance(clock, FakeClock)
    monkeypatch.setattr(cli, "now", clock)
    key, sealer = seal_key
    here = Kiosk(api, "cardiff", [PERSON])
    seq = await _enrolment_at(api, here, sealer)
    sha = _templates_sha(api, here, seq)
    code, err = _apply(api, key, here, seq, capsys)
    assert code == 0, err
    assert api.storage.get_blob(sha) is None
    assert api.storage.blob_removed(sha) == {
        "kind": "enrolment", "reason": "applied", "removed": clock.now}  # fmt: skip
    assert here.templates_of(api, PERSON) == TEMPLATES  # the roster keeps its own copies
    code, err = _apply(api, key, here, seq, capsys)
    assert code == 1 and "applied already" in err

    late = await _enrolment_at(api, here, sealer)
    late_sha = _templates_sha(api, here, late)
    clock.now += 14 * DAY_S - 60
    assert prune(api.storage, RetentionPolicy(), clock.now, "retention-timer").enrolments == 0
    clock.now += 60
    assert prune(api.storage, RetentionPolicy(), clock.now, "retention-timer").enrolments == 1
    assert api.storage.blob_removed(late_sha)["reason"] == "retention"  # type: ignore[index]
    code, err = _apply(api, key, here, late, capsys)
    assert code == 1 and "retention policy" in err and "enrol the person" in err

    applies = [e for e in api.storage.access_log() if e["action"] == "enrolment.apply"]
    assert [(e["operator"], e["device"], e["seq"], e["outcome"]) for e in applies] == [
        ("staff-0042", here.dev.device, seq, "ok"),
        ("staff-0042", here.dev.device, seq, "not_applied"),
        ("staff-0042", here.dev.device, late, "not_applied"),
    ]
    assert applies[0]["detail"] == {"fingers": 2, "kiosks": 1}
    assert PERSON not in json.dumps(api.storage.access_log())


def _templates_sha(api: InProcess, kiosk: Kiosk, seq: int) -> str:
    compact = next(c for _d, s, c in api.storage.export(kiosk.dev.device) if s == seq)
    return str(decode_unverified(compact)[1]["templates"])
