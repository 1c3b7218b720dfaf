"""Malformed requests the fuzzer (test_fuzz_contract.py) found answered with a server error or
outside the contract: each gets a clear ``{"error", "detail"}`` refusal and nothing is stored.
Both storage backends; synthetic data only."""

from __future__ import annotations

import base64
import json
import secrets

from daemon.records import GENESIS, sign_record
from hil.refapi.app import openapi_document
from hil.refapi.testing import InProcess, SimDevice

ADMIN = {"Authorization": "Bearer test-admin-token"}
OFFICER = ADMIN | {"X-Operator": "po-2231", "X-Purpose": "supervision"}
TOO_BIG = 2**63  # one past SQLite's and PostgreSQL's 64-bit integers


async def _code(api: InProcess) -> str:
    code = secrets.token_urlsafe(12)
    api.storage.add_code(code, api.settings.clock() + 60)
    return code


async def test_a_public_key_that_is_not_ascii_is_refused_and_the_code_still_works(
    api: InProcess,
) -> None:
    dev, code = SimDevice(), await _code(api)
    bad = dev.enrol_body(code) | {"public_key_pem": "-----BEGIN PUBLIC KEY-----\né\n"}
    r = await api.client.post("/v1/enrol", json=bad)
    assert r.status_code == 422 and r.json()["error"] == "public_key", r.text
    assert api.storage.device(dev.device) is None
    r = await api.client.post("/v1/enrol", json=dev.enrol_body(code))
    assert r.status_code == 201


async def test_a_number_too_big_for_the_store_in_a_query_or_path_is_a_422(
    api: InProcess, dev: SimDevice
) -> None:
    for url in [
        f"/v1/admin/devices/{dev.device}/records?after_seq={TOO_BIG}",
        f"/v1/admin/access-log?after_id={TOO_BIG}",
        f"/v1/admin/devices/{dev.device}/records/{TOO_BIG}/review",
    ]:
        r = await api.client.get(url, headers=OFFICER)
        assert r.status_code == 422, (url, r.text)


async def test_a_record_whose_seq_no_store_can_hold_is_rejected_not_a_crash(
    api: InProcess, dev: SimDevice
) -> None:
    clock = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    huge = [sign_record(dev.payload(s, GENESIS, clock=clock), dev.key)
            for s in (2**53, TOO_BIG - 1, TOO_BIG)]  # fmt: skip
    r = await api.push(dev, huge)
    assert r.status_code == 200, r.text
    assert [x["reason"] for x in r.json()["results"]] == ["schema"] * 3
    assert api.storage.count(dev.device) == 0
    # nor from anyone naming the device: a record nobody signed, its header a forgery
    payload = base64.urlsafe_b64encode(json.dumps({"seq": 2**70}).encode()).rstrip(b"=")
    unsigned = f"eyJhbGciOiJFUzI1NiJ9.{payload.decode()}.AAAA"
    r = await api.push(SimDevice(device=dev.device, clock=dev.clock), [unsigned])
    assert r.status_code == 401 and r.json()["error"] == "unauthorised", r.text
    assert api.storage.count(dev.device) == 0


async def test_a_request_that_breaks_the_contract_gets_the_contract_error_shape(
    api: InProcess,
) -> None:
    body = SimDevice().enrol_body("short") | {"alg": "RS256"}
    r = await api.client.post("/v1/enrol", json=body)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["error"] == "schema"
    assert {p["field"] for p in answer["problems"]} == {"body.code", "body.alg"}
    assert "body.code" in answer["detail"] and "send it again" in answer["detail"]
    assert "short" not in r.text and "RS256" not in r.text  # never echoes what was sent


async def test_a_body_that_is_not_json_text_is_a_422_schema(api: InProcess) -> None:
    r = await api.client.post(
        "/v1/enrol", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "schema", r.text
    r = await api.client.post(
        "/v1/admin/faults", content=b"\x80", headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "schema", r.text


async def test_an_unknown_path_or_method_gets_the_contract_error_shape(api: InProcess) -> None:
    r = await api.client.get("/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.client.delete("/v1/health")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


async def test_a_heartbeat_figure_of_another_json_type_is_refused_and_not_kept(
    api: InProcess, dev: SimDevice
) -> None:
    path = f"/v1/devices/{dev.device}/heartbeat"
    for body in [{"roster_dropped_count": False}, {"queue_depth": "3"}, {"parked": True}]:
        raw = json.dumps(body).encode()
        r = await api.client.post(path, content=raw, headers=dev.auth("POST", path, raw))
        assert r.status_code == 422 and r.json()["error"] == "schema", (body, r.text)
    assert api.storage.heartbeats(dev.device) == []


def test_the_contract_documents_every_refusal_the_server_makes() -> None:
    paths = openapi_document()["paths"]
    refused = {"$ref": "#/components/schemas/RequestRefused"}
    for path, ops in paths.items():
        for method, op in ops.items():
            answers = op["responses"]
            if (
                path.startswith("/v1/admin/")
                or path.startswith("/v1/devices/")
                or (path.startswith("/v1/blobs/"))
            ):
                assert {"401", "403", "422"} <= set(answers), (method, path)
            if "422" in answers:
                schema = answers["422"]["content"]["application/json"]["schema"]
                assert schema == refused or refused in schema.get("anyOf", []), (method, path)
    assert "200" in paths["/v1/enrol"]["post"]["responses"]  # a retried enrolment
    assert {"404", "409"} <= set(
        paths["/v1/admin/devices/{device}/records/{seq}/review"]["put"]["responses"]
    )


async def test_a_nul_or_a_malformed_name_is_refused_before_any_store_sees_it(
    api: InProcess, dev: SimDevice
) -> None:
    """PostgreSQL cannot hold a NUL in text: a device, chain, blob name, reason or roster
    key with one was a 500 on that backend. What a name may be is in the contract now."""
    reads = [
        "/v1/admin/devices/a%00b",
        "/v1/admin/devices/a%00b/records",
        "/v1/admin/devices/a%00b/heartbeats",
        "/v1/admin/devices/a%00b/missed",
        "/v1/admin/devices/a%00b/records/1/review",
        "/v1/admin/tasks?device=a%00b",
        "/v1/admin/access-log?device=a%00b",
        "/v1/admin/blobs/a%00b",
        "/v1/admin/blobs/not-a-sha256",
    ]
    for url in reads:
        r = await api.client.get(url, headers=OFFICER)
        assert r.status_code == 422 and r.json()["error"] == "schema", (url, r.text)
    r = await api.client.post(
        f"/v1/admin/devices/{dev.device}/retire", json={"reason": "lo\x00st"}, headers=OFFICER
    )
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "body.reason", r.text
    assert api.storage.retirements() == []
    other, code = SimDevice(), await _code(api)
    r = await api.client.post(
        "/v1/enrol", json=other.enrol_body(code) | {"roster_public_key": "AAAA\x00"}
    )
    assert r.status_code == 422 and r.json()["error"] == "schema", r.text
    assert api.storage.device(other.device) is None
    # a retired chain's name is a device name too
    r = await api.client.get(f"/v1/admin/devices/{dev.device}~1", headers=OFFICER)
    assert r.status_code == 404 and r.json()["error"] == "unknown_device", r.text
