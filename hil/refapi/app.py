"""The reference central API as a FastAPI app. See docs/api.md for the contract.

Device calls are authenticated by signed requests (daemon/reqauth.py) checked against the
device's key in effect, except enrolment (a one-time code) and record uploads: each record is
signed and verified with the key in effect at its seq; the batch's own KioskSig header names
the device, and a batch whose header does not verify (a device that rotated its key before the
API had its key_rotation record) is accepted only on the strength of its records.
A ``key_rotation`` record accepted in chain order switches the device's key (docs/api.md).
Admin calls need the bearer token given at start-up; without a token they are disabled.
Admin calls that read personal data also need ``X-Operator`` (who is reading) and are written
to the access log (DPA 2018 s.62) before the answer goes out; see docs/privacy.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from daemon.errors import DeviceKeyError, RecordError
from daemon.keys import PublicKey, alg_of, load_public_pem
from daemon.purposes import OPERATOR_ID, PURPOSES
from daemon.records import (
    MAX_SEQ,
    decode_unverified,
    is_seq,
    normal_receipt_code,
    receipt_code_of_hash,
    receipt_hash_prefixes,
    record_hash,
    verify_record,
)
from daemon.reqauth import RequestAuthError, parse_device, verify_request
from daemon.roster import Roster as KioskRoster
from daemon.roster import RosterInvalid, parse_roster
from daemon.rotation import ROTATION_TYPE, rotated_key
from hil.refapi.figures import Inputs, figures
from hil.refapi.missed import attendances, review_tasks
from hil.refapi.storage import (
    RETIRED_MARK,
    AccessEntry,
    Device,
    DeviceKey,
    EnrolmentRefused,
    Retirement,
    SqliteStorage,
    Storage,
    device_of_chain,
)
from hil.refapi.tasks import ENGLAND_AND_WALES, REVIEW_KINDS, Calendar, lost_blobs, tasks_of

MAX_BATCH = 500
#: the longest an enrolment code stays valid (30 days): a code is a key to the fleet
MAX_CODE_TTL_S = 30 * 86400.0
#: fault plan entries: "500", "503[:retry-after s]", "garbage", "stall[:s]", "lie"
_FAULT = re.compile(r"500|503(:\d{1,4})?|garbage|stall(:\d{1,3}(\.\d+)?)?|lie")


class EnrolRequest(BaseModel):
    code: str = Field(min_length=6, max_length=128)
    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    alg: Literal["ES256", "EdDSA"]
    public_key_pem: str = Field(max_length=4096)
    #: the device's X25519 roster key (base64), to which roster templates are sealed
    roster_public_key: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9+/]*={0,2}$")


class EnrolAnswer(BaseModel):
    device_id: str
    seal_public_key: str
    api_ca_pem: str


class Batch(BaseModel):
    records: list[str] = Field(max_length=MAX_BATCH)


class RecordResult(BaseModel):
    index: int
    seq: int | None
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class BatchAnswer(BaseModel):
    results: list[RecordResult]
    last_seq: int
    gaps: list[tuple[int, int]]


class Heartbeat(BaseModel):
    """Health figures a device reports (docs/api.md); unknown fields are kept as sent."""

    model_config = {"extra": "allow"}
    queue_depth: int | None = None
    oldest_unsent_s: float | None = None
    parked: int | None = None
    app: str | None = None
    sensor: Any = None  # a state word or an object; the contract leaves it open
    camera: Any = None
    disk_free_mb: float | None = None
    #: the data disk's level: "ok", "low", "no_photo" (check-ins without photos), "full"
    disk: str | None = None
    temperature_c: float | None = None
    clock_synced: bool | None = None
    last_seq: int | None = None
    kiosk: str | None = None  # "running" or "not_reporting" (kiosk.service's health report)
    kiosk_report_age_s: float | None = None
    faults: dict[str, str] | None = None  # part -> reason
    ui_beat_age_s: float | None = None  # the browser's heartbeat; null: none since the start
    kiosk_up_s: float | None = None  # how long the check-in process has been running
    simulated: bool | None = None
    #: parked records by the reason the API (or a batch refusal) gave
    parked_reasons: dict[str, int] | None = None
    #: sealed blobs still waiting to go up (deferred or refused)
    blobs_waiting: int | None = None
    #: the reason code of the failing upload, None when uploads are fine
    upload_error: str | None = None
    #: the API's latest roster was refused by the kiosk: reason, field, what, since when
    roster_refused: dict[str, Any] | None = None
    #: field paths of roster entries the kiosk left out (at most 20) and how many there are
    roster_dropped: list[str] | None = None
    roster_dropped_count: int | None = None


class RosterPerson(BaseModel):
    """One person due at the office (pseudonymous; docs/api.md). The full rules are the
    kiosk's own parser's (daemon/roster.py), which the publish endpoint applies."""

    model_config = {"extra": "allow"}
    ref: str
    dob_hmac: str
    templates: list[dict[str, Any]] = []
    next_appointment: dict[str, Any] | None = None
    appointments: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    in_person: bool = False
    biometric: Literal["fingerprint", "declined"] | None = Field(
        default=None,
        description="declined: the person chose not to give fingerprints; the kiosk checks "
        "them in by date of birth and photo as their own route, not a fallback, and keeps no "
        "templates for them. Absent or fingerprint: as before (templates when enrolled).",
    )


class Roster(BaseModel):
    """A device's roster (docs/api.md): no names, no plain dates of birth."""

    model_config = {"extra": "allow"}
    office: str
    generated_at: str
    dob_salt: str
    people: list[RosterPerson]


class RosterProblem(BaseModel):
    """One fault in a roster: the entry's index in ``people`` (None outside the entries), the
    field's path and what is wrong; never a value from the roster."""

    index: int | None
    field: str
    what: str


class RosterRefusedBody(BaseModel):
    """``422 roster_invalid``: the roster breaks the kiosk's rules (daemon/roster.py)."""

    error: Literal["roster_invalid"]
    detail: str
    field: str
    index: int | None
    problems: list[RosterProblem]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema in the document's components: the models of
    the bodies read as raw bytes (signed) and of the roster served as stored, which FastAPI
    does not see, are put there by ``create_app``'s ``document``."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _component_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s schema and those of the models in it, for ``components.schemas``: its
    references point there, not to a ``$defs`` no client of the document can resolve."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), model.__name__: schema}


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI requestBody for an endpoint that reads the raw bytes (they are signed)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(model)}},
        }
    }


class TaskOutcome(BaseModel):
    """How an officer closed a callback, a flagged answer or a visit a fault cut short."""

    model_config = {"extra": "forbid"}
    outcome: Literal["called_back", "seen", "no_answer", "not_needed"]
    #: a staff number, not a name
    officer: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")


class Review(BaseModel):
    """An officer's decision on a record sent for identity review (the manual ID check)."""

    model_config = {"extra": "forbid"}
    outcome: Literal["confirmed", "confirmed_with_concern", "rejected"]
    #: a staff number, not a name
    reviewer: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")


class HeartbeatAnswer(BaseModel):
    server_time: float


class CodeAnswer(BaseModel):
    code: str
    expires: float


class Health(BaseModel):
    status: Literal["ok"]


class ErrorBody(BaseModel):
    error: str
    detail: str


class FieldProblem(BaseModel):
    """One part of a request that is not what the contract says: where, and what is wrong
    (never the value sent)."""

    field: str
    what: str


class RequestRefused(ErrorBody):
    """``422``: the request breaks the contract (``schema``: its parameters or body, each fault
    in ``problems``) or the server refused a value (``error`` names which); nothing is stored."""

    problems: list[FieldProblem] = []


#: problems listed in one ``422 schema`` answer (the count is in ``detail``)
PROBLEMS_LISTED = 50


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Declared error answers (OpenAPI ``responses``) in the ``{"error", "detail"}`` shape;
    ``422`` as :class:`RequestRefused`."""
    return {s: {"model": RequestRefused if s == 422 else ErrorBody} for s in statuses}


#: what every device endpoint may answer besides its own: a KioskSig that is missing, does not
#: verify, names an unknown device or a time too far off (401); a device acting for another,
#: or a retired one (403); parameters that break the contract (422)
DEVICE_ERRORS = _errors(401, 403, 422)
#: what every admin endpoint may answer besides its own: a wrong admin token (401); admin off,
#: or a read of personal data without X-Operator and X-Purpose (403); a malformed request (422)
ADMIN_ERRORS = _errors(401, 403, 422)


class RemovedBody(BaseModel):
    """A blob that was held and is no more: when, and why (``retention``: the retention
    policy; ``applied``: enrolment templates put in the rosters)."""

    error: Literal["removed"]
    detail: str
    kind: str
    reason: str
    removed: float


class RetireRequest(BaseModel):
    """Why a device is retired, in plain words (no names): it is kept with the retirement."""

    model_config = {"extra": "forbid"}
    #: plain words: no control characters (a NUL, say, no store can keep)
    reason: str = Field(min_length=3, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class BlobInfo(BaseModel):
    sha256: str
    device: str
    received: float
    bytes: int


@dataclass
class Faults:
    """Planned misbehaviour for tests, consumed one per device request (off by default)."""

    enabled: bool = False
    plan: list[str] = field(default_factory=list)

    def next(self) -> str | None:
        return self.plan.pop(0) if self.enabled and self.plan else None


@dataclass
class Settings:
    storage: Storage
    admin_token: str | None = None
    seal_public_key: str = ""
    ca_pem: str = ""
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    #: when officers' tasks fall due (bank holidays, the service's own closed days)
    calendar: Calendar = ENGLAND_AND_WALES
    #: the kiosks here run simulated drivers on purpose (the demo, a rig with emulators): not a
    #: ``simulated_hardware`` problem. Off: every kiosk is taken to be one people rely on.
    simulated_expected: bool = False


#: a check of the batch's request signature against (public key PEM, alg)
LateAuth = Callable[[str, str], bool]


class BatchUnauthenticated(Exception):
    """Neither the batch's request signature nor any of its records verifies."""


class DeviceGone(Exception):
    """The device was retired while its batch waited for the device's lock."""


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Any:
    return HTTPException(status, {"error": error, "detail": detail}, headers=headers)


def _named_operator(
    x_operator: Annotated[
        str | None,
        Header(
            description="the staff number (or service id) of who is acting, for the access "
            "log (DPA 2018 s.62); required to read personal data (403 operator_required); "
            "one not of this form: 422 operator",
            # in the contract; checked below, to answer with its own error code
            json_schema_extra={"pattern": f"^{OPERATOR_ID.pattern}$"},
        ),
    ] = None,
) -> str | None:
    """The ``X-Operator`` header, checked: a staff number or a service's id, lower case, never
    a name. Admin endpoints check the token first (their ``dependencies`` run first)."""
    if x_operator is not None and not OPERATOR_ID.fullmatch(x_operator):
        raise _error(422, "operator", "X-Operator must be a staff number or service id "
                     "(a-z, 0-9, '.', '_', '-'; up to 32), never a name")  # fmt: skip
    return x_operator


@dataclass(frozen=True, slots=True)
class Acting:
    """Who consults personal data, and why (DPA 2018 s.62: the access log must show both)."""

    operator: str
    purpose: str


def _operator(
    op: Annotated[str | None, Depends(_named_operator)],
    x_purpose: Annotated[
        str | None,
        Header(
            description="why personal data is consulted, for the access log (DPA 2018 "
            f"s.62(3)): one of {', '.join(PURPOSES)}; required to read personal data "
            "(403 purpose_required)",
            json_schema_extra={"enum": list(PURPOSES)},
        ),
    ] = None,
) -> Acting:
    """Who reads personal data, and why: both required, for the access log (DPA 2018 s.62)."""
    if op is None:
        raise _error(
            403,
            "operator_required",
            "reading personal data needs X-Operator: <your staff number> (the access log "
            "says who consulted what)",
        )
    if x_purpose not in PURPOSES:
        raise _error(
            403,
            "purpose_required",
            "reading personal data needs X-Purpose: why, one of "
            f"{', '.join(PURPOSES)} (the access log keeps the justification, DPA 2018 s.62)",
        )
    return Acting(op, x_purpose)


#: a device id (docs/api.md), or a retired device's chain (``<device>~<n>``)
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(~[0-9]{1,9})?$"
#: a device in a path: anything else is no device (422, before any store sees it)
DeviceId = Annotated[
    str, PathParam(pattern=DEVICE_ID, description="a device id, or a retired chain <device>~<n>")
]
DeviceQuery = Annotated[
    str | None,
    Query(pattern=DEVICE_ID, description="a device id, or a retired chain <device>~<n>"),
]

#: a sealed blob's name in a path: the SHA-256 of its bytes, in hex
Sha256 = Annotated[str, PathParam(pattern="^[0-9a-fA-F]{64}$")]

#: a record's seq in a path: beyond :data:`MAX_SEQ` no record can be (422, not a store error)
Seq = Annotated[int, PathParam(ge=1, le=MAX_SEQ)]

#: the operator of a read of personal data (required); of another admin act (optional)
Operator = Annotated[Acting, Depends(_operator)]
NamedOperator = Annotated[str | None, Depends(_named_operator)]


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Probation kiosk central API (reference)",
        version="1.0.0",
        description="Contract between check-in kiosks and the central probation system. "
        "See docs/api.md.",
    )
    store = settings.storage

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        """Every error in the contract's ``{"error", "detail"}`` shape, the framework's too."""
        if isinstance(exc.detail, dict):
            body = exc.detail
        elif exc.status_code == 400:
            # the only 400 is the framework's: a JSON body it could not read (not UTF-8, say);
            # a body that breaks the contract, like any other (docs/api.md)
            return JSONResponse(
                RequestRefused(
                    error="schema",
                    detail="body: not JSON text (UTF-8). Correct the request and send it "
                    "again (docs/openapi.json); nothing was stored.",
                    problems=[FieldProblem(field="body", what="not JSON text (UTF-8)")],
                ).model_dump(),
                status_code=422,
            )
        else:
            error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
            body = {"error": error, "detail": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        """``422 schema`` in the contract's error shape, naming every fault (never a value
        sent: a request may carry personal data)."""
        problems = [
            FieldProblem(field=".".join(str(part) for part in e["loc"]), what=e["msg"])
            for e in exc.errors()
        ] or [FieldProblem(field="request", what="does not match the contract")]
        first = problems[0]
        more = f" (and {len(problems) - 1} more: see problems)" if len(problems) > 1 else ""
        body = RequestRefused(
            error="schema",
            detail=f"{first.field}: {first.what}{more}. Correct the request and send it again "
            "(docs/openapi.json); nothing was stored.",
            problems=problems[:PROBLEMS_LISTED],
        )
        return JSONResponse(body.model_dump(), status_code=422)

    @app.middleware("http")
    async def _faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        fault = None if path.startswith(("/v1/admin", "/v1/health")) else settings.faults.next()
        if fault is None:
            return await call_next(request)
        kind, _, arg = fault.partition(":")
        if kind == "500":
            return JSONResponse({"error": "internal", "detail": "injected"}, status_code=500)
        if kind == "503":
            return JSONResponse(
                {"error": "busy", "detail": "injected"},
                status_code=503,
                headers={"Retry-After": arg or "1"},
            )
        if kind == "garbage":
            return Response(
                b"\x00<html>proxy error</html>", status_code=200, media_type="application/json"
            )
        if kind == "stall":
            await asyncio.sleep(float(arg or "5"))
            return await call_next(request)
        if kind == "lie":  # do the work, then claim it failed
            await call_next(request)
            return JSONResponse({"error": "internal", "detail": "injected lie"}, status_code=500)
        return await call_next(request)

    # --- auth helpers ----------------------------------------------------------------------
    async def claimed_device(request: Request) -> tuple[bytes, str | None, str, Device]:
        """(body, Authorization header, the device it names, that device's stored row); 401
        when the header is malformed or names a device that is not enrolled."""
        body = await request.body()
        header = request.headers.get("Authorization")
        try:
            claimed = parse_device(header)
        except RequestAuthError as exc:
            raise _error(401, exc.reason, str(exc)) from exc
        known = store.device(claimed)
        if known is None:
            if (refusal := retired(claimed, request, header, body)) is not None:
                raise refusal
            raise _error(
                401, "unknown_device", "this device is not enrolled; run kioskctl provision"
            )
        return body, header, claimed, known

    def retired(
        claimed: str, request: Request, header: str | None, body: bytes
    ) -> HTTPException | None:
        """``403 device_retired`` when the request is signed by a key of a retired chain of
        ``claimed`` (the old unit still running, or its card synced elsewhere); else None.
        Only on the way to refusing a request anyway: never on the hot path."""
        for gone in store.retirements(claimed):
            for key in store.device_keys(gone.chain):
                try:
                    public = load_public_pem(key.public_pem)
                    path, now = request.url.path, settings.clock()
                    verify_request(header, request.method, path, body, public, key.alg, now)
                except RequestAuthError:
                    continue
                when = time.strftime("%Y-%m-%d", time.gmtime(gone.at))
                refusal: HTTPException = _error(
                    403,
                    "device_retired",
                    f"device {claimed} was retired on {when} and this key with it; it can no "
                    f"longer send anything. Its records are kept (as {gone.chain}), and none on "
                    "this kiosk is lost: give the central team `kioskctl outbox export` to add "
                    "what is still here (`kiosk-refapi import`). To use this unit again, "
                    "provision it with a new code.",
                )
                return refusal
        return None

    async def device_auth(request: Request, device: str | None = None) -> str:
        body, header, claimed, known = await claimed_device(request)
        try:
            verify_request(
                header,
                request.method,
                request.url.path,
                body,
                load_public_pem(known.public_pem),
                known.alg,
                settings.clock(),
            )
        except RequestAuthError as exc:
            if (
                exc.reason != "clock_skew"
                and (refusal := retired(claimed, request, header, body)) is not None
            ):
                raise refusal from exc
            raise _error(401, exc.reason, str(exc)) from exc
        if device is not None and device != claimed:
            raise _error(403, "wrong_device", "a device may only act for itself")
        return claimed

    async def records_auth(request: Request, device: str) -> LateAuth | None:
        """The records batch's header: it must name ``device`` (an enrolled one) and a time
        within 300 s. Returns None when its signature verifies with the key in effect, else a
        check to make again with the key in effect after the batch (a key_rotation in it)."""
        body, header, claimed, known = await claimed_device(request)
        if device != claimed:
            raise _error(403, "wrong_device", "a device may only act for itself")
        method, path, now = request.method, request.url.path, settings.clock()

        def check(public_pem: str, alg: str) -> None:
            verify_request(header, method, path, body, load_public_pem(public_pem), alg, now)

        try:
            check(known.public_pem, known.alg)
        except RequestAuthError as exc:
            if exc.reason == "clock_skew":
                raise _error(401, exc.reason, str(exc)) from exc

            def late(public_pem: str, alg: str) -> bool:
                try:
                    check(public_pem, alg)
                except RequestAuthError:
                    return False
                return True

            return late
        return None

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.admin_token
        if not token:
            raise _error(403, "admin_disabled", "start the server with an admin token")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _error(401, "unauthorised", "wrong admin token")

    admin_api = APIRouter(dependencies=[Depends(admin)], responses=ADMIN_ERRORS)

    def logged(
        op: Acting | str,
        action: str,
        *,
        outcome: str = "ok",
        device: str | None = None,
        seq: int | None = None,
        target: str | None = None,
        **detail: Any,
    ) -> None:
        """One line of the access log, written before the answer goes out: if it cannot be
        written, nothing is disclosed. ``detail``: counts, never personal data; the purpose of
        an :class:`Acting` operator is added to it (so the log's hash chain covers it)."""
        who = op.operator if isinstance(op, Acting) else op
        if isinstance(op, Acting):
            detail = {**detail, "purpose": op.purpose}
        store.log_access(AccessEntry(settings.clock(), who, "api", action, outcome, device, seq,
                                     target, detail))  # fmt: skip

    # --- public endpoints ------------------------------------------------------------------
    @app.get("/v1/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok")

    @app.post(
        "/v1/enrol",
        status_code=201,
        response_model=EnrolAnswer,
        responses={
            200: {
                "model": EnrolAnswer,
                "description": "already enrolled with this key (a retried enrolment): harmless",
            },
            **_errors(403, 409, 422),
        },
    )
    def enrol(body: EnrolRequest, response: Response) -> EnrolAnswer:
        try:
            key = load_public_pem(body.public_key_pem)
        except DeviceKeyError as exc:
            raise _error(422, "public_key", str(exc)) from exc
        if alg_of(key) != body.alg:
            raise _error(422, "alg", "the key does not match the algorithm")
        try:
            outcome = store.enrol(
                body.code,
                body.device_id,
                body.alg,
                body.public_key_pem,
                settings.clock(),
                roster_public_key=body.roster_public_key,
            )
        except EnrolmentRefused as exc:
            detail = {
                "enrolment_code": "the enrolment code is wrong, used or expired; ask for a new one",
                "already_enrolled": "this device id is enrolled with another key; if that unit "
                "is gone, the central team retires it (POST /v1/admin/devices/{device}/retire) "
                "and the id can be enrolled again",
                "key_retired": "this key belonged to a device that was retired; enrol with a "
                "new key",
            }[exc.reason]
            raise _error(exc.status, exc.reason, detail) from exc
        if outcome == "unchanged":
            response.status_code = 200
        return EnrolAnswer(
            device_id=body.device_id,
            seal_public_key=settings.seal_public_key,
            api_ca_pem=settings.ca_pem,
        )

    @app.post(
        "/v1/devices/{device}/records",
        response_model=BatchAnswer,
        responses=DEVICE_ERRORS,
        openapi_extra=_json_body(Batch),
    )
    async def records(
        device: DeviceId,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        late_auth = await records_auth(request, device)
        raw = await request.body()
        try:
            batch = Batch.model_validate_json(raw)
        except ValueError as exc:
            raise _error(422, "schema", 'the body must be {"records": [compact JWS, ...]}') from exc
        body_hash = hashlib.sha256(raw).hexdigest()
        if idempotency_key and late_auth is None:
            prior = store.idempotent_answer(device, idempotency_key)
            if prior is not None:
                if prior[0] != body_hash:
                    raise _error(
                        422, "idempotency_key_reused", "this key was used for another batch"
                    )
                return JSONResponse(json.loads(prior[1]))
        idem = (idempotency_key, body_hash) if idempotency_key else None
        try:
            payload = await asyncio.to_thread(
                _process_batch, store, device, batch.records, idem, settings.clock(), late_auth
            )
        except (BatchUnauthenticated, DeviceGone) as exc:
            header = request.headers.get("Authorization")
            if (refusal := retired(device, request, header, raw)) is not None:
                raise refusal from exc
            raise _error(
                401,
                "unauthorised",
                "the request signature does not verify with this device's key and no record "
                "in the batch does either",
            ) from exc
        return JSONResponse(payload)

    @app.put(
        "/v1/blobs/{sha256}",
        status_code=201,
        responses={
            200: {
                "description": "already held, or removed under the retention policy (then "
                "``removed`` says when and why; it is not stored again)"
            },
            **DEVICE_ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                    }
                },
            }
        },
    )
    async def put_blob(sha256: Sha256, request: Request, response: Response) -> dict[str, Any]:
        device = await device_auth(request)
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != sha256.lower():
            raise _error(422, "hash_mismatch", "the body does not hash to the name; resend it")
        created = store.put_blob(sha256.lower(), device, data, settings.clock())
        if created:
            return {"sha256": sha256.lower()}
        response.status_code = 200
        # a photo removed under the retention policy is not taken back (that would restart
        # its clock), but the device must still let go of its copy: 200, not an error
        removed = store.blob_removed(sha256.lower())
        return {"sha256": sha256.lower()} | ({"removed": removed} if removed else {})

    @app.get(
        "/v1/devices/{device}/roster",
        responses={
            200: {
                "description": "the roster, with a strong ETag",
                "content": {"application/json": {"schema": _ref(Roster)}},
            },
            304: {"description": "not modified (If-None-Match matched the ETag)"},
            **DEVICE_ERRORS,
            **_errors(404),
        },
    )
    async def roster(
        device: DeviceId,
        request: Request,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        await device_auth(request, device)
        got = store.get_roster(device)
        if got is None:
            raise _error(404, "no_roster", "no roster has been published for this device yet")
        etag, body = got
        offered = {t.strip() for t in (if_none_match or "").split(",")}
        if etag in offered or "*" in offered:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    @app.post(
        "/v1/devices/{device}/heartbeat",
        response_model=HeartbeatAnswer,
        responses=DEVICE_ERRORS,
        openapi_extra=_json_body(Heartbeat),
    )
    async def heartbeat(device: DeviceId, request: Request) -> HeartbeatAnswer:
        await device_auth(request, device)
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise _error(422, "schema", "the heartbeat must be a JSON object") from exc
        if not isinstance(body, dict):
            raise _error(422, "schema", "the heartbeat must be a JSON object")
        try:
            # strict: a figure of another JSON type (false for a count, "3" for a number) is
            # refused, not coerced; the heartbeat is kept as sent, so it must be as documented
            Heartbeat.model_validate(body, strict=True)
        except ValueError as exc:
            raise _error(422, "schema", "a heartbeat figure has the wrong type") from exc
        store.heartbeat(device, body, settings.clock())
        return HeartbeatAnswer(server_time=settings.clock())

    # --- admin -----------------------------------------------------------------------------
    @admin_api.post("/v1/admin/enrolment-codes", response_model=CodeAnswer)
    def mint_code(ttl_s: Annotated[float, Query(gt=0, le=MAX_CODE_TTL_S)] = 3600.0) -> CodeAnswer:
        code = secrets.token_urlsafe(12)
        expires = settings.clock() + ttl_s
        store.add_code(code, expires)
        return CodeAnswer(code=code, expires=expires)

    @admin_api.put(
        "/v1/admin/devices/{device}/roster",
        openapi_extra=_json_body(Roster),
        responses={
            422: {
                "model": RosterRefusedBody | RequestRefused,
                "description": "``roster_invalid``: the kiosk would refuse the roster; or the "
                "request itself is malformed (``schema``, ``operator``)",
            }
        },
    )
    async def put_roster(device: DeviceId, request: Request, op: NamedOperator) -> dict[str, str]:
        """Publish a device's roster; served byte for byte with a strong ETag. It is checked
        first with the kiosk's own parser (daemon/roster.py): a roster the kiosk would refuse,
        or in which it would leave anyone out, is refused here (``422 roster_invalid`` naming
        every bad entry's index and field, never its data) and the published one stays.
        Logged in the access log (``X-Operator`` when given: a case system publishing on its
        own account may leave it out)."""
        body = await request.body()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _error(422, "schema", "the roster must be JSON (docs/api.md, Roster)") from exc
        roster = _check_roster(data)
        etag = store.put_roster(device, body)
        await asyncio.to_thread(
            logged, op or "unnamed", "roster.publish", device=device, people=len(roster.people)
        )
        return {"etag": etag}

    @admin_api.get("/v1/admin/devices")
    def fleet() -> dict[str, Any]:
        """Every enrolled kiosk with what needs someone (the same ``problems`` as its status),
        those with problems first, the most urgent first (a kiosk nobody can check in at, or
        nobody can see, before one with a clock to set): the field engineers' morning list."""
        now = settings.clock()
        gone = {r.chain: r.as_dict() for r in store.retirements()}
        listed = [
            (
                d,
                []  # kept for its records: nobody needs to go to a retired device
                if d in gone
                else device_problems(
                    store.heartbeats(d, 1), now, simulated_expected=settings.simulated_expected
                ),
            )
            for d in store.devices()
        ]
        listed.sort(key=lambda k: (k[0] in gone, urgency(k[1]), k[0]))  # retired ones last
        return {
            "devices": [
                {"device": d, "last_seq": store.last_seq(d), "problems": problems}
                | ({"retired": gone[d]} if d in gone else {})
                for d, problems in listed
            ]
        }

    @admin_api.get("/v1/admin/devices/{device}", responses=_errors(404))
    def device_status(device: DeviceId) -> dict[str, Any]:
        known = store.device(device)
        earlier = store.retirements(device_of_chain(device))
        if known is None:
            chains = ", ".join(r.chain for r in earlier)
            raise _error(404, "unknown_device", "no such device is enrolled"
                         + (f"; it was retired, its records are kept as {chains}" if chains
                            else ""))  # fmt: skip
        return {
            "device": device,
            "alg": known.alg,
            "keys": [
                {
                    "from_seq": k.from_seq,
                    "alg": k.alg,
                    "public_key_pem": k.public_pem,
                    "since": k.since,
                }
                for k in store.device_keys(device)
            ],
            "roster_public_key": known.roster_public_key,
            "records": store.count(device),
            "last_seq": store.last_seq(device),
            "gaps": store.gaps(device),
            "forks": store.forks(device),
            "heartbeat": store.last_heartbeat(device),
            "last_boot": _last_boot(store, device),
            "problems": device_problems(
                store.heartbeats(device, 1),
                settings.clock(),
                simulated_expected=settings.simulated_expected,
            )
            if RETIRED_MARK not in device
            else [],
            # this chain's retirement, or null; and the device id's earlier, retired chains
            "retired": next((r.as_dict() for r in earlier if r.chain == device), None),
            "retired_chains": [r.chain for r in earlier if RETIRED_MARK not in device],
        }

    @admin_api.post(
        "/v1/admin/devices/{device}/retire",
        response_model=Retirement,
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    def retire(device: DeviceId, body: RetireRequest, op: Operator) -> Retirement:
        """Retire a device whose key is lost or whose unit was replaced: its key can no longer
        send (403 ``device_retired``); its records, keys, reviews and tasks are kept under
        its retired chain's name (``<device>~<n>``), listed and exported as before; the
        device id may be enrolled again with a new key and a new code, starting a new chain.
        Logged in the access log (``device.retire``)."""
        if RETIRED_MARK in device:
            logged(op, "device.retire", outcome="already_retired", target=device)
            raise _error(409, "already_retired", f"{device} is a retired device's chain already")
        done = store.retire(device, op.operator, body.reason, settings.clock())
        if done is None:
            logged(op, "device.retire", outcome="not_found", device=device)
            raise _error(404, "unknown_device", "no such device is enrolled (retired already?)")
        logged(op, "device.retire", device=device, target=done.chain, records=done.records,
               last_seq=done.last_seq)  # fmt: skip
        return done

    @admin_api.get("/v1/admin/devices/{device}/records")
    def list_records(
        device: DeviceId,
        op: Operator,
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Stored records of one device in seq order, a page at a time (``after_seq``)."""
        found = store.list_records(device, after_seq, limit)
        logged(op, "records.list", device=device, after_seq=after_seq, returned=len(found))
        return found

    @admin_api.get("/v1/admin/devices/{device}/heartbeats")
    def list_heartbeats(
        device: DeviceId, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """The latest heartbeats of one device, newest first."""
        return store.heartbeats(device, limit)

    @admin_api.get("/v1/admin/receipts/{code}", responses=_errors(404))
    def receipt(code: str, op: Operator) -> dict[str, Any]:
        """The record a person's attendance reference names (shown on the kiosk when their
        record was saved): device, seq, type, flags, when it arrived. Usually one; a second
        is possible (40 bits) and both are listed."""
        try:
            prefixes = receipt_hash_prefixes(code)
        except ValueError as exc:
            raise _error(422, "receipt_code", str(exc)) from exc
        found = [
            {k: v for k, v in r.items() if k != "hash"}
            for r in store.by_hash_prefix(prefixes)
            if receipt_code_of_hash(r["hash"]) == normal_receipt_code(code)
        ]
        normal = normal_receipt_code(code)
        logged(op, "receipt.lookup", outcome="ok" if found else "not_found", target=normal,
               returned=len(found))  # fmt: skip
        if not found:
            raise _error(404, "unknown_receipt", "no stored record has that reference (yet?)")
        return {"code": normal, "records": found}

    @admin_api.get("/v1/admin/devices/{device}/missed", responses=_errors(404))
    def missed(
        device: DeviceId, op: Operator, grace_days: Annotated[float, Query(ge=0, le=60)] = 3.0
    ) -> dict[str, Any]:
        """People on this kiosk's roster whose appointment passed more than ``grace_days``
        ago with no record of them at this kiosk or any other of its office (the roster's
        ``office``): review tasks for an officer, never a breach (hil/refapi/missed.py)."""
        if store.device(device) is None:
            raise _error(404, "unknown_device", "no such device is enrolled")
        roster = store.get_roster(device)
        if roster is None:
            logged(op, "missed.list", device=device, outcome="no_roster", tasks=0)
            return {"device": device, "grace_days": grace_days, "tasks": []}
        office = json.loads(roster[1]).get("office")
        kiosks = [device]
        if office is not None:  # someone who reported at the kiosk beside this one came
            for other in store.devices():
                theirs = store.get_roster(other) if other != device else None
                if theirs is not None and json.loads(theirs[1]).get("office") == office:
                    kiosks.append(other)
        # a visit to a unit since retired counts (its chain is kept under another name)
        kiosks += [r.chain for k in list(kiosks) for r in store.retirements(k)]
        seen: dict[str, list[float]] = {}
        running: list[float] = []  # when any of the office's kiosks said it was running
        known_since = float("-inf")  # before this, the heartbeats kept say nothing
        for kiosk in kiosks:
            for person, times in attendances(_received_records(store, kiosk)).items():
                seen.setdefault(person, []).extend(times)
            beats = store.heartbeat_states(kiosk, HEARTBEATS_READ)
            running += [received for received, up in beats if up]
            if len(beats) == HEARTBEATS_READ:  # older ones exist but were not read
                known_since = max(known_since, beats[-1][0])
        now = settings.clock()
        tasks = review_tasks(roster[1], seen, now, grace_days, running=sorted(running),
                             known_since=known_since)  # fmt: skip
        logged(op, "missed.list", device=device, grace_days=grace_days, tasks=len(tasks))
        return {"device": device, "as_of": now, "grace_days": grace_days, "tasks": tasks}

    @admin_api.put(
        "/v1/admin/devices/{device}/records/{seq}/review",
        status_code=201,
        responses=_errors(404, 409),
    )
    def review(device: DeviceId, seq: Seq, body: Review, op: Operator) -> dict[str, Any]:
        """Record the decision on one record (confirmed, confirmed with concern, rejected) by
        the reviewing officer, who is the operator (``reviewer`` must equal ``X-Operator``).
        Kept, never overwritten: a second decision is refused (409). A reviewed record
        leaves the alerts list."""
        if body.reviewer != op.operator:
            raise _error(422, "reviewer", "the reviewer must be the operator (X-Operator)")
        found = store.list_records(device, seq - 1, 1)
        if not found or found[0]["seq"] != seq:
            logged(op, "review.record", outcome="not_found", device=device, seq=seq)
            raise _error(404, "unknown_record", "no such record is stored for that device")
        saved = store.add_review(device, seq, body.outcome, body.reviewer, settings.clock())
        logged(op, "review.record", outcome="ok" if saved else "already_reviewed", device=device,
               seq=seq)  # fmt: skip
        if saved is None:
            raise _error(409, "already_reviewed", "that record already has a decision; it stands")
        return {"device": device, "seq": seq, **saved}

    @admin_api.get("/v1/admin/devices/{device}/records/{seq}/review", responses=_errors(404))
    def get_review(device: DeviceId, seq: Seq, op: Operator) -> dict[str, Any]:
        found = store.review(device, seq)
        logged(op, "review.read", outcome="ok" if found else "not_found", device=device, seq=seq)
        if found is None:
            raise _error(404, "not_reviewed", "no decision has been recorded for that record")
        return {"device": device, "seq": seq, **found}

    @admin_api.get("/v1/admin/tasks")
    def officer_tasks(
        op: Operator,
        state: Annotated[Literal["open", "all"], Query()] = "open",
        device: DeviceQuery = None,
    ) -> dict[str, Any]:
        """The officers' worklist (hil/refapi/tasks.py): a callback or a flagged answer is
        due the same working day, an identity review or a visit a fault cut short by the end
        of the next, a sampled photo check of someone who chose not to give fingerprints
        within five; overdue ones first. ``state=all`` includes the closed ones."""
        now = settings.clock()
        outcomes, reviews = store.task_outcomes(), store.reviews()
        found = []
        for kiosk in [device] if device else store.devices():
            held = [(seq, decode_unverified(compact)[1], received)
                    for seq, compact, received in _records_received(store, kiosk)]  # fmt: skip
            lost = lost_blobs(p for _s, p, _r in held)
            for seq, payload, received in held:
                gone = lost.get(str(payload.get("photo") or payload.get("templates")))
                for task in tasks_of(kiosk, seq, payload, received, settings.calendar):
                    closed: dict[str, Any] | None
                    if task.kind in REVIEW_KINDS:  # closed by the identity decision
                        closed = reviews.get((kiosk, seq))
                    else:
                        closed = outcomes.get((kiosk, seq, task.kind))
                    if closed is None or state == "all":
                        found.append(
                            task.as_dict()
                            | {"person": payload.get("person"), "overdue": closed is None
                               and now > task.due, "closed": closed}
                            | ({"blob_lost": gone} if gone else {})
                        )  # fmt: skip
        found.sort(key=lambda t: (t["closed"] is not None, not t["overdue"], t["due"]))
        logged(op, "tasks.list", device=device, state=state, returned=len(found))
        return {"as_of": now, "tasks": found}

    @admin_api.put(
        "/v1/admin/devices/{device}/records/{seq}/tasks/{kind}",
        status_code=201,
        responses=_errors(404, 409),
    )
    def close_task(
        device: DeviceId,
        seq: Seq,
        kind: Literal["callback", "attention", "fault_followup"],
        body: TaskOutcome,
        op: Operator,
    ) -> dict[str, Any]:
        """Close one task of one record with its outcome, by the officer who is the operator.
        Kept, never overwritten (409). An identity review or a photo check is closed by its
        review decision (``.../review``). A record whose task is closed leaves the alerts
        list."""
        if body.officer != op.operator:
            raise _error(422, "officer", "the officer must be the operator (X-Operator)")
        near = store.records_near(device, [seq], [])[0].get(seq)
        stored = near.compact if near is not None else None
        if stored is None:
            logged(op, "task.close", outcome="not_found", device=device, seq=seq)
            raise _error(404, "unknown_record", "no such record is stored for that device")
        if kind not in {t.kind for t in tasks_of(device, seq, decode_unverified(stored)[1], 0)}:
            logged(op, "task.close", outcome="no_such_task", device=device, seq=seq)
            raise _error(404, "no_such_task", f"that record made no {kind} task")
        saved = store.close_task(device, seq, kind, body.outcome, op.operator, settings.clock())
        logged(op, "task.close", outcome="ok" if saved else "already_closed", device=device,
               seq=seq, kind=kind)  # fmt: skip
        if saved is None:
            raise _error(409, "already_closed", "that task already has an outcome; it stands")
        return {"device": device, "seq": seq, "kind": kind, **saved}

    @admin_api.get("/v1/admin/figures")
    def evaluation_figures(
        op: Operator, days: Annotated[float, Query(gt=0, le=3660)] = 28.0
    ) -> dict[str, Any]:
        """The service's evaluation figures over the last ``days`` (hil/refapi/figures.py):
        visits, fallback and manual-review rates, visit times, time to review, callback
        fulfilment, on-time reporting, kiosk uptime (by device id, from its first enrolment
        when that was in the period: a retired chain counts for its kiosk until its
        retirement), people who keep falling back."""
        until = settings.clock()
        kiosks = store.devices()
        records = [
            (d, seq, decode_unverified(c)[1], received)
            for d in kiosks
            for seq, c, received in _records_received(store, d)
        ]
        outcomes = {k: (v["outcome"], v["at"]) for k, v in store.task_outcomes().items()}
        rosters = {d: json.loads(r[1]) for d in kiosks if (r := store.get_roster(d))}
        beats = {d: store.heartbeat_states(d, HEARTBEATS_READ) for d in kiosks}
        # a kiosk's in-service time starts at its first enrolment: its oldest chain's first
        # key (a chain keeps its keys when retired)
        enrolled: dict[str, float] = {}
        for d in kiosks:
            if keys := store.device_keys(d):
                kiosk = device_of_chain(d)
                enrolled[kiosk] = min(enrolled.get(kiosk, keys[0].since), keys[0].since)
        out = figures(
            Inputs(
                since=until - days * 86400,
                until=until,
                records=records,
                reviews={k: v["at"] for k, v in store.reviews().items()},
                outcomes=outcomes,
                heartbeats=beats,
                retired={r.chain: (r.device, r.at) for r in store.retirements()},
                enrolled=enrolled,
                rosters=rosters,
                calendar=settings.calendar,
            )
        )
        logged(op, "figures.read", days=days, falling_back=len(out["falling_back"]))
        return out

    @admin_api.get("/v1/admin/alerts")
    def alerts(op: Operator) -> list[dict[str, Any]]:
        found = store.alerts()
        logged(op, "alerts.list", returned=len(found))
        return found

    @admin_api.get(
        "/v1/admin/blobs/{sha256}",
        response_model=BlobInfo,
        responses={404: {"model": ErrorBody}, 410: {"model": RemovedBody}},
    )
    def blob_status(sha256: Sha256, op: Operator) -> Any:
        """Whether a sealed blob (a photo, an enrolment's templates) is held: who sent it,
        when, its size; never its bytes (a reviewer opens a photo with ``kiosk-refapi
        open-photo``). ``410`` when it was removed under the retention policy or after its
        templates were applied, with when and why."""
        sha = sha256.lower()
        held = store.blob_info(sha)
        removed = None if held else store.blob_removed(sha)
        outcome = "ok" if held else "removed" if removed else "not_found"
        device = held["device"] if held else None
        logged(op, "blob.status", outcome=outcome, device=device, target=sha[:12])
        if held is not None:
            return BlobInfo(sha256=sha, **held)
        if removed is not None:
            why = {
                "retention": "removed under the retention policy",
                "applied": "removed once its templates were put in the rosters",
            }.get(removed["reason"], "removed")
            raise HTTPException(410, {"error": "removed", "detail": f"this blob was {why}",
                                      **removed})  # fmt: skip
        raise _error(404, "unknown_blob", "no blob with that hash was ever stored")

    @admin_api.get("/v1/admin/access-log")
    def access_log(
        op: Operator,
        after_id: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        operator: Annotated[str | None, Query(pattern=f"^{OPERATOR_ID.pattern}$")] = None,
        device: DeviceQuery = None,
    ) -> list[dict[str, Any]]:
        """The access log (DPA 2018 s.62) in order, a page at a time (``after_id``), of one
        operator or one device if asked. Reading it is logged too."""
        found = store.access_log(after_id, limit, operator, device)
        logged(op, "access_log.read", after_id=after_id, returned=len(found))
        return found

    @admin_api.post("/v1/admin/faults")
    def faults(plan: list[str]) -> dict[str, int]:
        if not settings.faults.enabled:
            raise _error(403, "faults_disabled", "start the server with fault injection enabled")
        bad = [entry for entry in plan if not _FAULT.fullmatch(entry)]
        if bad:
            raise _error(
                422,
                "fault_plan",
                f"unknown fault {bad[0]!r}; use 500, 503[:s], garbage, stall[:s] or lie",
            )
        settings.faults.plan.extend(plan)
        return {"queued": len(settings.faults.plan)}

    app.include_router(admin_api)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = FastAPI.openapi(app).setdefault("components", {}).setdefault("schemas", {})
            for model in (Batch, Heartbeat, Roster):
                schemas.update(_component_schemas(model))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = document  # type: ignore[method-assign]
    return app


#: the most roster problems one refusal lists (the count is in ``detail``)
ROSTER_PROBLEMS_LISTED = 50
_ENTRY = re.compile(r"^people\[(\d+)\]")


def _check_roster(data: Any) -> KioskRoster:
    """The roster as the kiosk reads it; HTTPException 422 ``roster_invalid`` when the kiosk
    would refuse it or leave anyone out of it (every such entry listed by index and field)."""
    try:
        roster = parse_roster(data, drop_bad_people=True)
    except RosterInvalid as exc:
        entry = _ENTRY.match(exc.field)
        problems = [RosterProblem(index=int(entry[1]) if entry else None, field=exc.field,
                                  what=exc.what)]  # fmt: skip
    else:
        if not roster.dropped:
            return roster
        problems = [
            RosterProblem(index=d.index, field=d.field, what=d.what) for d in roster.dropped
        ]
    first = problems[0]
    more = f" (and {len(problems) - 1} more entries: see problems)" if len(problems) > 1 else ""
    refused = RosterRefusedBody(
        error="roster_invalid",
        detail=f"the kiosk would refuse this roster: {first.field} {first.what}{more}. Correct "
        "it and publish again; the roster published before stays in use.",
        field=first.field,
        index=first.index,
        problems=problems[:ROSTER_PROBLEMS_LISTED],
    )
    raise HTTPException(422, refused.model_dump())


class _KeyHistory:
    """Which key verifies which seq: each key from its ``from_seq`` to the next one's."""

    def __init__(self, keys: list[DeviceKey]) -> None:
        self.starts = [k.from_seq for k in keys]
        self.keys: list[PublicKey] = [load_public_pem(k.public_pem) for k in keys]
        self.latest = keys[-1]

    def key_for(self, seq: object) -> PublicKey:
        if not isinstance(seq, int) or isinstance(seq, bool):
            return self.keys[-1]  # the record is rejected anyway (schema)
        for start, key in zip(reversed(self.starts), reversed(self.keys), strict=True):
            if seq >= start:
                return key
        return self.keys[0]

    def add(self, key: DeviceKey, public: PublicKey) -> None:
        self.starts.append(key.from_seq)
        self.keys.append(public)
        self.latest = key


def _process_batch(
    store: Storage,
    device: str,
    compacts: list[str],
    idem: tuple[str, str] | None,
    now: float,
    late_auth: LateAuth | None = None,
) -> dict[str, Any]:
    """Verify and classify every record, store the accepted ones (and forks, for the auditor,
    and the device's new key when a key_rotation is accepted) in one durable transaction, and
    return the answer. ``late_auth`` is given when the request signature did not verify with
    the key in effect: it is tried again with the key in effect after the batch; failing that,
    the batch stands on its records (its answer is not kept for the Idempotency-Key) and is
    refused (:class:`BatchUnauthenticated`, nothing stored) when none of them verifies. Runs in
    a worker thread; batches of one device are serialised (see ``batch_lock``)."""
    with store.batch_lock(device):
        return _process_batch_locked(store, device, compacts, idem, now, late_auth)


#: a device silent this long has lost power or network (it heartbeats every minute)
SILENT_S = 15 * 60
DISK_LOW_MB = 512
HOT_C = 80.0
#: the browser beats every 2 s and the shell restarts it after 15 s of quiet: a minute without
#: a beat while the check-in process runs means nobody at the kiosk sees a working screen
SCREEN_STALE_S = 60.0

#: how soon each problem needs someone: 0 a person at the kiosk may be unable to check in or
#: be told what to do (or nobody can tell), 1 the kiosk works but something is wrong with what
#: it records or a part, 2 worth a look on the next visit. The fleet list is sorted by it.
URGENCY = {
    "silent": 0,
    "kiosk_not_running": 0,
    "screen_not_showing": 0,
    "disk_full": 0,
    "part": 1,
    "records_rejected": 1,
    # people added or changed since the roster in use, or left out of it, check in at
    # reception until the service desk corrects the roster
    "roster_refused": 1,
    "roster_dropped": 1,
    "simulated_hardware": 1,
    "disk_no_photo": 1,
    "hot": 1,
    "disk_low": 2,
    "clock_unsynced": 2,
}


def urgency(problems: list[str]) -> int:
    """The most urgent of ``problems`` (:data:`URGENCY`; an unknown word counts as urgent);
    ``len(URGENCY)`` when there are none."""
    if not problems:
        return len(URGENCY)
    return min(URGENCY.get(p.split(":", 1)[0], 0) for p in problems)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def device_problems(
    latest: list[dict[str, Any]], now: float, *, simulated_expected: bool = False
) -> list[str]:
    """What needs someone, from the device's newest heartbeat: ``silent``, ``kiosk_not_running``
    (the sync process reports, the check-in process does not), ``screen_not_showing`` (the
    check-in process runs but the browser's heartbeat is older than a minute, or there has been
    none in its first minute), ``part:<part>:<reason>``, ``disk_low`` / ``disk_no_photo`` /
    ``disk_full`` (the kiosk's own level; from an older kiosk without one, ``disk_low`` under
    512 MB), ``hot``, ``clock_unsynced``, ``records_rejected`` (records the API refused, parked
    on the device: attendance nobody centrally can see), ``roster_refused`` (the kiosk refused
    the latest roster and keeps its previous one), ``roster_dropped`` (the kiosk left people
    out of its roster), ``simulated_hardware`` (simulated drivers on a kiosk the service relies
    on; not said when ``simulated_expected``: a demo or a rig). Empty when all is well."""
    if not latest:
        return ["silent"]
    received, body = float(latest[0]["received"]), latest[0]["body"]
    problems = ["silent"] if now - received > SILENT_S else []
    if body.get("kiosk") == "not_reporting":
        problems.append("kiosk_not_running")
    elif body.get("kiosk") == "running":
        beat = _number(body.get("ui_beat_age_s"))
        # no beat since the process started: the screen has been dark as long as it has run
        quiet = beat if beat is not None else _number(body.get("kiosk_up_s"))
        if quiet is not None and quiet > SCREEN_STALE_S:
            problems.append("screen_not_showing")
    faults = body.get("faults")
    if isinstance(faults, dict):
        problems += [f"part:{part}:{reason}" for part, reason in sorted(faults.items())]
    level, disk = body.get("disk"), body.get("disk_free_mb")
    if level in ("low", "no_photo", "full"):
        problems.append(f"disk_{level}")
    elif level is None and isinstance(disk, (int, float)) and disk < DISK_LOW_MB:
        problems.append("disk_low")
    temp = body.get("temperature_c")
    if isinstance(temp, (int, float)) and temp >= HOT_C:
        problems.append("hot")
    if body.get("clock_synced") is False:
        problems.append("clock_unsynced")
    parked = _number(body.get("parked"))
    if parked is not None and parked > 0:
        problems.append("records_rejected")
    if body.get("roster_refused"):
        problems.append("roster_refused")
    if body.get("roster_dropped") or body.get("roster_dropped_count"):
        problems.append("roster_dropped")
    if body.get("simulated") is True and not simulated_expected:
        problems.append("simulated_hardware")
    return problems


#: heartbeats read per kiosk for the uptime figure (a minute apart: about four weeks)
HEARTBEATS_READ = 40_000


def _records_received(store: Storage, device: str) -> Iterator[tuple[int, str, float]]:
    """(seq, compact JWS, time the API received it) for each of ``device``'s records."""
    received: dict[int, float] = {}
    after = 0
    while page := store.list_records(device, after, 1000):
        received.update((r["seq"], r["received"]) for r in page)
        after = page[-1]["seq"]
    return ((seq, c, received.get(seq, 0.0)) for _d, seq, c in store.export(device))


def _received_records(store: Storage, device: str) -> Iterator[tuple[str, float]]:
    """(compact JWS, time the API received it) for each of ``device``'s stored records."""
    return ((c, received) for _seq, c, received in _records_received(store, device))


def _last_boot(store: Storage, device: str) -> dict[str, Any] | None:
    """What the device said when it last started: software version, update slots (kept or
    rejected updates), parts that failed, simulated parts. From its newest ``boot`` record."""
    found = store.last_of_type(device, "boot")
    if found is None:
        return None
    seq, compact, received = found
    detail = decode_unverified(compact)[1].get("detail") or {}
    return {
        "seq": seq,
        "received": received,
        **{k: detail.get(k) for k in ("app", "slots", "faults", "simulated")},
    }


def _process_batch_locked(
    store: Storage,
    device: str,
    compacts: list[str],
    idem: tuple[str, str] | None,
    now: float,
    late_auth: LateAuth | None,
) -> dict[str, Any]:
    if idem is not None and late_auth is None:  # the same batch may have completed meanwhile
        prior = store.idempotent_answer(device, idem[0])
        if prior is not None and prior[0] == idem[1]:
            return dict(json.loads(prior[1]))
    keys = store.device_keys(device)
    if not keys:  # retired while this batch waited for the lock
        raise DeviceGone
    history = _KeyHistory(keys)
    signer = device_of_chain(device)  # a retired chain's records carry the device id
    rotations: list[DeviceKey] = []
    stored_top: int | None = None  # the highest stored seq, read when a rotation needs it
    verified_any = False
    parts: list[tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None] = []
    for c in compacts:
        try:
            parts.append(decode_unverified(c))
        except RecordError:
            parts.append(None)
    decoded = [None if p is None else p[1] for p in parts]
    # only seqs the schema allows: a huge one (unsigned, or signed by a faulty device) must not
    # reach the store's 64-bit column; its record is rejected as ``schema`` below
    seqs = [p["seq"] for p in decoded if p and is_seq(p.get("seq"))]
    ids = [str(p["id"]) for p in decoded if p and "id" in p]
    stored, known_ids = store.records_near(device, seqs, ids)
    batch_hash: dict[int, str] = {}
    results: list[dict[str, Any]] = []
    accepted: list[tuple[dict[str, Any], str, str]] = []
    forks: list[tuple[int, str, str]] = []
    for index, (compact, payload, part) in enumerate(zip(compacts, decoded, parts, strict=True)):
        seq = payload.get("seq") if payload else None
        rid = payload.get("id") if payload else None
        result: dict[str, Any] = {
            "index": index,
            "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            "id": rid if isinstance(rid, str) else None,
            "status": "rejected",
            "reason": None,
        }
        results.append(result)
        try:
            record = verify_record(compact, history.key_for(seq), device=signer, decoded=part)
        except RecordError as exc:
            result["reason"] = exc.reason
            continue
        verified_any = True
        h = record_hash(compact)
        here = stored[record.seq].hash if record.seq in stored else batch_hash.get(record.seq)
        if here is not None:
            if here == h:
                result["status"] = "duplicate"
            else:
                forks.append((record.seq, compact, "fork"))
                result["reason"] = "fork"
            continue
        if record.id in known_ids:
            result["reason"] = "duplicate_id"
            continue
        before = batch_hash.get(record.seq - 1) or (
            stored[record.seq - 1].hash if record.seq - 1 in stored else None
        )
        after = stored.get(record.seq + 1)
        if (before is not None and record.payload["prev"] != before) or (
            after is not None and after.prev != h
        ):
            forks.append((record.seq, compact, "prev_mismatch"))
            result["reason"] = "prev_mismatch"
            continue
        if record.type == ROTATION_TYPE:
            # it verified with the key in effect; it must name a usable key and continue the
            # chain: its predecessor is held (stored or earlier in this batch; genesis for seq
            # 1) and nothing after it is, since later records must verify with the new key
            if stored_top is None:
                stored_top = store.last_seq(device)
            top = max(stored_top, max(batch_hash, default=0))
            try:
                new = rotated_key(record)
            except RecordError as exc:
                result["reason"] = exc.reason
                continue
            if (before is None and record.seq != 1) or top > record.seq:
                result["reason"] = "rotation_order"
                continue
            change = DeviceKey(record.seq + 1, new.alg, new.public_pem, now)
            history.add(change, new.key)
            rotations.append(change)
        batch_hash[record.seq] = h
        known_ids.add(record.id)
        accepted.append((dict(record.payload), compact, h))
        result["status"] = "accepted"
    if late_auth is not None and not late_auth(history.latest.public_pem, history.latest.alg):
        if not verified_any:
            raise BatchUnauthenticated
        idem = None  # a batch that stands on its records only: no stored answer to replay
    return store.store_batch(device, accepted, forks, results, idem, now, rotations)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server (committed as docs/openapi.json)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        storage = SqliteStorage(Path(tmp) / "x.sqlite3")
        try:
            return create_app(Settings(storage=storage)).openapi()
        finally:
            storage.close()
