"""Malformed requests the fuzzer (test_fuzz_contract.py) found answered with a server error or
outside the contract: each gets a clear ``{"error", "detail"}`` refusal and nothing is stored.
Both storage backends; synthetic data only."""

from __future__ import annotations

import secrets

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
