"""The reference API fuzzed against its own OpenAPI document (docs/openapi.json) with
schemathesis: every operation, with requests that follow the contract and requests that break
it, unauthenticated and authenticated (an enrolled synthetic kiosk signing each request, the
operator's headers on admin calls). No answer may be a server error, and every answer's status,
content type and body must be the documented ones. Derandomised: the same requests every run.

All data is synthetic; the app runs in process (no socket).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from daemon.reqauth import sign_request
from hil.refapi.app import Faults, Settings, create_app
from hil.refapi.pgstore import PostgresStorage
from hil.refapi.storage import SqliteStorage, Storage
from hil.refapi.testing import SimDevice, roster_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
#: examples per operation and way of calling (the file runs in about 40 s on two cores); fewer
#: for the admin calls with generated operator headers, which mostly stop at those
EXAMPLES = 50
EXAMPLES_TOKEN_ONLY = 20
ADMIN_TOKEN = "fuzz-admin-token"  # an in-process test app
OPERATOR = {"x-operator": "fe-0417", "x-purpose": "audit"}
#: a marker the signing shim replaces with the kiosk's KioskSig over the bytes actually sent
SIGN = "X-Fuzz-Sign"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class Signing:
    """In front of the app: a request carrying :data:`SIGN` is signed as ``dev`` would sign
    it, over the method, path and body the app receives (whatever the fuzzer serialised)."""

    def __init__(self, app: Asgi, dev: SimDevice) -> None:
        self.app, self.dev = app, dev

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        marker = SIGN.lower().encode()
        if scope["type"] != "http" or all(k != marker for k, _v in scope["headers"]):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        auth = sign_request(self.dev.key, self.dev.device, scope["method"], scope["path"], body,
                            self.dev.clock())  # fmt: skip
        headers = [(k, v) for k, v in scope["headers"] if k not in (marker, b"authorization")]
        scope = dict(scope, headers=[*headers, (b"authorization", auth.encode())])
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@dataclass
class Target:
    settings: Settings
    dev: SimDevice


# Both stores, as every in-process API test: the fuzzing found a bug only PostgreSQL showed (a
# NUL in a name, which it cannot store). About 50 s on each store on two cores.
@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The app on a fresh store with one enrolled kiosk, a roster for it and a few of its
    records (so reads have something to answer)."""
    storage: Storage
    if request.param == "postgres":
        storage = PostgresStorage(request.getfixturevalue("pg_dsn"))
    else:
        storage = SqliteStorage(tmp_path / "refapi.sqlite3")
    s = Settings(storage=storage, admin_token=ADMIN_TOKEN, faults=Faults(enabled=True))
    dev = SimDevice()
    storage.add_code("fuzz-code-1", time.time() + 60)
    storage.enrol("fuzz-code-1", dev.device, dev.alg, dev.public_pem, time.time())
    storage.put_roster(dev.device, json.dumps(roster_doc("CR-000001", "CR-000002")).encode())
    try:
        yield Target(s, dev)
    finally:
        storage.close()


CONTRACT = DOC.read_text()
SCHEMA = schemathesis.openapi.from_dict(json.loads(CONTRACT))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _fuzz(target: Target, operation: Any, auth: str) -> Counter[int]:
    """Send ``EXAMPLES`` generated requests to ``operation``, check every answer, and count
    the answers' statuses. ``auth``: ``none``; ``token`` (admin calls with the token, the
    operator's headers as generated); ``full`` (signed device calls, the token and a valid
    operator on admin calls)."""
    schema = schemathesis.openapi.from_dict(json.loads(CONTRACT))
    schema.app = Signing(create_app(target.settings), target.dev)
    op = schema[operation.path][operation.method.upper()]
    # fixed parts of every request: given to the generator, so that it neither varies nor
    # breaks them (a breaking request made valid by an override would be a false alarm)
    fixed: dict[str, Any] = {}
    sign: dict[str, str] = {}  # not in the contract: a marker for the signing shim
    if auth == "token" and op.path.startswith("/v1/admin/"):
        fixed["headers"] = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    elif auth == "full":
        if op.path.startswith("/v1/admin/"):
            fixed["headers"] = {"authorization": f"Bearer {ADMIN_TOKEN}", **OPERATOR}
        elif op.path != "/v1/enrol" and op.path != "/v1/health":
            sign = {SIGN: "1"}
            if "{device}" in op.path:  # the kiosk acts for itself: the body is what is fuzzed
                fixed["path_parameters"] = {"device": target.dev.device}
    statuses: Counter[int] = Counter()
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    cases = st.one_of([op.as_strategy(m, **fixed) for m in modes])

    examples = EXAMPLES_TOKEN_ONLY if auth == "token" else EXAMPLES

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)  # fmt: skip
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        try:
            statuses[case.call_and_validate(headers=sign, checks=CHECKS).status_code] += 1
        finally:
            target.settings.faults.plan.clear()  # a fault plan the fuzzer queued: not for others

    run()
    return statuses


def _id(op: Any) -> str:
    return f"{op.method.upper()} {op.path}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=_id)
def test_an_unauthenticated_request_is_answered_as_documented_and_changes_nothing(
    target: Target, operation: Any
) -> None:
    store = target.settings.storage
    before = store.get_roster(target.dev.device)
    _fuzz(target, operation, "none")
    assert store.devices() == [target.dev.device]
    assert store.count() == 0 and store.heartbeats(target.dev.device) == []
    assert store.get_roster(target.dev.device) == before


@pytest.mark.parametrize("operation", OPERATIONS, ids=_id)
def test_an_authenticated_request_is_answered_as_documented(target: Target, operation: Any) -> None:
    statuses = _fuzz(target, operation, "full")
    # the signatures and the operator's headers were taken: the bodies reached the checks
    assert set(statuses) - {401, 403}, statuses


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if "/admin/" in op.path], ids=_id)
def test_an_admin_request_with_the_operator_headers_as_generated_is_answered_as_documented(
    target: Target, operation: Any
) -> None:
    _fuzz(target, operation, "token")


def test_every_documented_operation_is_fuzzed() -> None:
    assert len(OPERATIONS) >= 24
    paths = {(op.method.upper(), op.path) for op in OPERATIONS}
    assert ("POST", "/v1/devices/{device}/records") in paths
    assert ("PUT", "/v1/admin/devices/{device}/roster") in paths
