"""Records: signing, the hash chain and the one verifier."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwcrypto import jwk, jws  # an independent JOSE library, never used for signing

from daemon.clock import rfc3339
from daemon.errors import RecordError
from daemon.keys import Alg, public_pem
from daemon.records import (
    GENESIS,
    b64url,
    b64url_decode,
    canonical_json,
    decode_unverified,
    normal_receipt_code,
    receipt_code,
    receipt_code_of_hash,
    receipt_hash_prefixes,
    record_hash,
    uuid7,
    verify_chain,
    verify_record,
)
from tests.core.helpers import make_key, open_outbox, synthetic_checkin

KEY = make_key("ES256")
OTHER = make_key("ES256")


def _chain(tmp: Path, n: int, key=KEY, device: str = "kiosk-t1") -> list[str]:
    with open_outbox(tmp, key, device=device) as ob:
        for i in range(n):
            ob.append("checkin", synthetic_checkin(i))
        return [c for _s, _st, c in ob.all_compact()]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _chain(tmp_path_factory.mktemp("chain"), 8)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    # the same device id and the same key, but a different history: a replay source
    return _chain(tmp_path_factory.mktemp("foreign"), 8)


def test_chain_verifies_and_links(chain: list[str]) -> None:
    records = verify_chain(chain, KEY.public_key(), "kiosk-t1", head_seq=8)
    assert [r.seq for r in records] == list(range(1, 9))
    assert records[0].payload["prev"] == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.payload["prev"] == record_hash(before.compact)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_independent_jose_library_verifies_with_only_the_public_key(
    tmp_path: Path, alg: Alg
) -> None:
    key = make_key(alg)
    compact = _chain(tmp_path, 1, key)[0]
    public = jwk.JWK.from_pem(public_pem(key.public_key()).encode())
    token = jws.JWS()
    token.deserialize(compact)
    token.verify(public, alg=alg)  # raises on a bad signature
    assert json.loads(token.payload)["seq"] == 1
    bad = jws.JWS()
    bad.deserialize(compact)
    with pytest.raises(jws.InvalidJWSSignature):
        bad.verify(jwk.JWK.from_pem(public_pem(make_key(alg).public_key()).encode()), alg=alg)


def test_wrong_key_and_wrong_device_are_rejected(chain: list[str]) -> None:
    with pytest.raises(RecordError) as err:
        verify_record(chain[0], OTHER.public_key())
    assert err.value.reason == "bad_signature"
    with pytest.raises(RecordError) as err:
        verify_record(chain[0], KEY.public_key(), device="kiosk-other")
    assert err.value.reason == "wrong_device"


def _resign(compact: str, **changes: object) -> str:
    """What an attacker with the device key could do: a validly signed altered record."""
    from daemon.records import sign_record

    _h, payload, _si, _sig = decode_unverified(compact)
    payload.update(changes)
    return sign_record(payload, KEY)


# --- property: every tampering is detected ---------------------------------------------------
mutations = st.sampled_from(["alter", "resign", "delete", "swap", "duplicate", "replay"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=mutations, i=st.integers(0, 7), j=st.integers(0, 7), pos=st.integers(0, 10_000))
def test_any_tampering_is_detected(
    chain: list[str], foreign: list[str], kind: str, i: int, j: int, pos: int
) -> None:
    tampered = list(chain)
    if kind == "alter":
        # flip one character anywhere in one record (header, payload or signature)
        text = tampered[i]
        k = pos % len(text)
        repl = "A" if text[k] != "A" else "B"
        tampered[i] = text[:k] + repl + text[k + 1 :]
        if tampered[i] == chain[i]:
            return
    elif kind == "resign":
        # even re-signed with the device key, a changed record breaks the next link
        tampered[i] = _resign(tampered[i], answers={"address_changed": True})
        if i == 7:  # the tail: its own hash is only pinned by the device's reported head hash
            assert record_hash(tampered[i]) != record_hash(chain[i])
            return
    elif kind == "delete":
        del tampered[i]
    elif kind == "swap":
        if i == j:
            return
        tampered[i], tampered[j] = tampered[j], tampered[i]
    elif kind == "duplicate":
        tampered.insert(j, tampered[i])
    elif kind == "replay":
        tampered[i] = foreign[i]
    with pytest.raises(RecordError):
        verify_chain(tampered, KEY.public_key(), "kiosk-t1", head_seq=8)


@settings(max_examples=25, deadline=None)
@given(
    types=st.lists(
        st.sampled_from(["checkin", "checkin_fallback", "tamper", "fault", "boot"]),
        min_size=1,
        max_size=6,
    ),
    answers=st.dictionaries(
        st.text("abcdefghij_", min_size=1, max_size=12),
        st.one_of(st.booleans(), st.text(max_size=40), st.integers(-5, 5)),
        max_size=4,
    ),
    flags=st.lists(st.sampled_from(["see_officer", "id_review", "fault"]), unique=True),
)
def test_every_record_the_daemon_produces_verifies(
    tmp_path_factory: pytest.TempPathFactory, types: list[str], answers: dict, flags: list[str]
) -> None:
    tmp = tmp_path_factory.mktemp("prod")
    with open_outbox(tmp, KEY) as ob:
        for n, t in enumerate(types):
            ob.append(t, {"person": f"CR-{n:06d}", "answers": answers, "flags": flags})
        compacts = [c for _s, _st, c in ob.all_compact()]
    verify_chain(compacts, KEY.public_key(), "kiosk-t1", head_seq=len(types))


def test_schema_rejects_unknown_fields_and_types(chain: list[str]) -> None:
    for bad in (
        {"type": "holiday"},
        {"seq": 0},
        {"seq": True},
        {"at": "yesterday"},
        {"flags": ["nonsense"]},
        {"photo": "not-a-hash"},
        {"name": "A Person"},
    ):
        with pytest.raises(RecordError) as err:
            verify_record(_resign(chain[0], **bad), KEY.public_key())
        assert err.value.reason == "schema", bad


def test_malformed_input_is_a_clear_error() -> None:
    for junk in ("", "a.b", "a.b.c.d", "!!.??.##", "e30.e30.", "\u00e9.a.b"):
        with pytest.raises(RecordError) as err:
            verify_record(junk, KEY.public_key())
        assert err.value.reason in {"malformed", "schema", "bad_signature"}


def test_uuid7_is_time_ordered_and_versioned() -> None:
    a, b = uuid7(1_700_000_000_000), uuid7(1_700_000_000_001)
    assert a < b and a[14] == "7" and a[19] in "89ab"


@given(st.binary(max_size=64))
def test_b64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url(data)) == data


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=8))
def test_canonical_json_is_the_sorted_compact_utf8_spelling(obj: dict[str, object]) -> None:
    """Records signed by the fast serialiser carry the same bytes the standard library would
    write (sorted keys, no whitespace, UTF-8), so a payload has one spelling across versions."""
    expected = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    assert canonical_json(obj) == expected.encode()


def test_uuid7_never_repeats_across_threads_or_a_fork() -> None:
    """Ids come from a pool of kernel randomness: threads must never share bytes, and a forked
    child (the sync process is started from the same code) must not replay its parent's pool."""
    uuid7()  # the parent's pool is filled
    seen: list[str] = []

    def burst() -> None:
        seen.extend(uuid7(1_700_000_000_000) for _ in range(2000))

    workers = [threading.Thread(target=burst) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(seen)) == len(seen) == 8000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next id, then leave without running pytest's teardown
        os.write(write, uuid7(1_700_000_000_000).encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child_id not in seen and child_id != uuid7(1_700_000_000_000)


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_rfc3339_matches_the_standard_library(unix_s: float) -> None:
    ms = int(unix_s * 1000)
    when = datetime.datetime.fromtimestamp(ms // 1000, datetime.UTC)
    assert rfc3339(unix_s) == when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(st.binary(min_size=1, max_size=200))
def test_a_receipt_code_is_short_unambiguous_and_leads_back_to_its_record(raw: bytes) -> None:
    compact = b64url(raw) + ".e30.c2ln"  # any ASCII text stands for a compact JWS here
    code = receipt_code(compact)
    assert len(code) == 9 and code[4] == "-"
    assert not set(code) & set("ILOU")  # nothing to misread or misspell
    assert receipt_code_of_hash(record_hash(compact)) == code
    assert record_hash(compact)[:7] in receipt_hash_prefixes(code)
    assert normal_receipt_code(code.lower().replace("-", " ")) == code


@pytest.mark.parametrize("bad", ["", "7K2M-9QX", "7K2M-9QXDD", "7K2M-9QX!", "UUUU-UUUU"])
def test_what_is_not_a_receipt_code_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="8 letters and digits"):
        receipt_hash_prefixes(bad)
