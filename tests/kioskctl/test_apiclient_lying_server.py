"""kioskctl's own HTTP client (provision's enrolment, doctor's API rows) against a central API
that lies: an answer that trickles forever, one that never ends, JSON Python's parser refuses,
a Content-Encoding the body does not follow, HTML or JSON of the wrong shape with a 200. The
engineer must see one line saying what to do (or a doctor row), never a traceback or a hang,
and provisioning must write nothing. The lying server is httpx.MockTransport (the seam the
project owns) behind ``apiclient.client``, and for an answer whose headers trickle, a real TLS
server on loopback; every body here is synthetic."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.clock import FakeClock
from daemon.kioskctl import apiclient
from daemon.kioskctl.__main__ import main
from daemon.kioskctl.parts import Parts
from hil import pki as pkimod
from tests.kioskctl.conftest import Kiosk, no_systemd

Handler = Callable[[httpx.Request], httpx.Response]
TIMEOUT_S = 0.05  # each wait; the whole answer must come within 12 times this


def _lying(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> None:
    def client(api: Any, timeout_s: float | None = None) -> apiclient.Http:
        return apiclient.Http(api, TIMEOUT_S, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(apiclient, "client", client)


def _trickle(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        end = time.monotonic() + 10  # the old client read all of it, 10 s; then gave up
        while time.monotonic() < end:
            await asyncio.sleep(TIMEOUT_S / 5)  # each wait well inside the per-read timeout
            yield b" "

    return httpx.Response(200, content=body())


PULLED: list[int] = []


def _flood(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(1024):  # 64 MiB in all, as long as someone reads
            PULLED.append(1)
            yield b" " * 65536

    return httpx.Response(200, content=body())


def _answer(body: bytes, status: int = 200, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, content=body, headers=headers)


DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b'{"seal_public_key": ' + b"7" * 5000 + b"}"
GZIP_LIE = _answer(b'{"seal_public_key": "x"}', **{"Content-Encoding": "gzip"})
HTML = _answer(b"<html><body>Sign in to the guest Wi-Fi</body></html>",
               **{"Content-Type": "text/html"})  # fmt: skip

PROVISION_CASES = {
    "trickle": (_trickle, "did not finish answering within 0.6 s"),
    "flood": (_flood, "larger than 1024 KiB"),
    "deep json": (_answer(DEEP), "not JSON"),
    "huge integer": (_answer(HUGE_INT), "not JSON"),
    "gzip lie": (GZIP_LIE, "Content-Encoding is wrong"),
    "html": (HTML, "not JSON"),
    "json list": (_answer(b"[1, 2]"), "not a JSON object"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pkimod.Pki:
    return pkimod.create(tmp_path_factory.mktemp("pki"))


def _provision(
    tmp_path: Path, pki: pkimod.Pki, url: str = "https://api.test/"
) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--config", str(tmp_path / "etc" / "kiosk.toml"), "provision",
            "--device-id", "kiosk-lie01", "--api-url", url,
            "--ca", str(pki.ca_cert), "--code=synthetic-code-1",
            "--data-dir", str(tmp_path / "data"), "--allow-simulated"]  # fmt: skip
    began = time.monotonic()
    code = main(argv, parts=Parts(run=no_systemd), clock=FakeClock(wall=time.time()),
                stdout=out, stderr=err)  # fmt: skip
    return code, out.getvalue(), err.getvalue(), time.monotonic() - began


def _nothing_written(tmp_path: Path) -> bool:
    data = tmp_path / "data"
    return not (tmp_path / "etc").exists() and (not data.exists() or not any(data.iterdir()))


@pytest.mark.parametrize("case", PROVISION_CASES)
def test_provision_against_a_lying_api_says_what_to_do_in_one_line(
    tmp_path: Path, pki: pkimod.Pki, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    handler, must_say = PROVISION_CASES[case]
    _lying(monkeypatch, handler)
    PULLED.clear()
    code, out, err, took = _provision(tmp_path, pki)
    assert code == 1
    assert "provisioned" not in out
    assert err.count("\n") == 1 and err.startswith("kioskctl: the API at https://api.test/")
    assert must_say in err
    assert "Nothing was changed on this kiosk" in err and "retry" in err
    assert "photo-sealing key" not in err  # the old, wrong, explanation of a garbage 200
    assert took < 3
    assert len(PULLED) <= 20  # at most about 1 MiB of the flood was read
    assert _nothing_written(tmp_path)


def test_provision_refuses_a_ca_bundle_that_is_not_a_certificate(
    tmp_path: Path, pki: pkimod.Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 of the right shape but a wrong ``api_ca_pem`` was written as the kiosk's CA
    bundle, and kiosk-sync then stopped with 78 asking for one."""
    answer = {"seal_public_key": pki.seal_public_b64(), "api_ca_pem": "<html>not a CA</html>"}
    _lying(monkeypatch, lambda request: httpx.Response(201, json=answer))
    code, _out, err, _took = _provision(tmp_path, pki)
    assert code == 1
    assert err.count("\n") == 1
    assert "CA bundle that is not a PEM certificate" in err and "[api_ca]" in err
    assert "Nothing was written on this kiosk" in err
    assert _nothing_written(tmp_path)


class SlowHeaders:
    """A TLS server on loopback (the test PKI's certificate) that reads the request, then
    sends its status line and headers a byte every ``TIMEOUT_S / 5``: each wait is well
    inside the client's timeout and the whole never ends (a broken proxy, or a slow-loris
    answer). It gives up after 30 s, so the old client, which bounded only the body, failed
    the test in 30 s instead of hanging for hours."""

    def __init__(self, pki: pkimod.Pki) -> None:
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(pki.server_cert, pki.server_key)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}/"
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            try:
                with self._tls.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(5)
                    tls.recv(65536)
                    self._trickle(tls)
            except (OSError, ssl.SSLError):
                pass  # the client gave up and closed: as it should

    def _trickle(self, tls: ssl.SSLSocket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 50_000
        give_up = time.monotonic() + 30
        for i in range(len(head)):
            if self._stop.is_set() or time.monotonic() > give_up:
                return
            tls.sendall(head[i : i + 1])
            self.sent += 1
            time.sleep(TIMEOUT_S / 5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()


def test_provision_against_an_api_whose_headers_trickle_gives_up_within_the_deadline(
    tmp_path: Path, pki: pkimod.Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real TLS, real sockets: only the timeout is made short. The deadline covers the
    headers too, not only the body."""
    real = apiclient.Http
    monkeypatch.setattr(apiclient, "client", lambda api, timeout_s=None: real(api, TIMEOUT_S))
    server = SlowHeaders(pki)
    try:
        code, _out, err, took = _provision(tmp_path, pki, server.url)
    finally:
        server.close()
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"kioskctl: the API at {server.url}")
    assert "did not finish answering within 0.6 s" in err
    assert "Nothing was changed on this kiosk" in err
    assert took < 3
    assert server.sent > 10  # it was the headers that were slow: some had come
    assert _nothing_written(tmp_path)


# --- doctor: the api rows ------------------------------------------------------------------
def _doctor_api(kiosk: Kiosk, health: Handler, roster: Handler) -> dict[str, dict[str, str]]:
    import json

    def handler(request: httpx.Request) -> httpx.Response:
        return health(request) if request.url.path.endswith("/health") else roster(request)

    mp = pytest.MonkeyPatch()
    try:
        _lying(mp, handler)
        began = time.monotonic()
        code, out, err = kiosk.run("doctor", "--json", "--no-hardware")
        assert time.monotonic() - began < 5
    finally:
        mp.undo()
    assert "Traceback" not in err
    assert code in (0, 1)  # 1 with a failed row, 0 when the lie only warns
    return {c["name"]: c for c in json.loads(out)["checks"]}


def _dated(body: bytes, status: int = 200, date: str | None = None) -> Handler:
    when = date or time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    return _answer(body, status, Date=when)


DOCTOR_CASES = {
    "health trickles": (_trickle, _dated(b"{}"), "api", "did not finish answering"),
    "health floods": (_flood, _dated(b"{}"), "api", "larger than 1024 KiB"),
    "health gzip lie": (GZIP_LIE, _dated(b"{}"), "api", "Content-Encoding is wrong"),
    "garbage Date": (_dated(b"{}", date="yesterday-ish"), _dated(b"{}"), "clock skew",
                     "Date header that is not a date"),
    "401 deep json": (_dated(b"{}"), _dated(DEEP, 401), "api enrolment", "(401 )"),
    "401 json list": (_dated(b"{}"), _dated(b"[1]", 401), "api enrolment", "(401 )"),
    "roster trickles": (_dated(b"{}"), _trickle, "api enrolment", "did not finish answering"),
}  # fmt: skip


@pytest.mark.parametrize("case", DOCTOR_CASES)
def test_doctor_api_rows_against_a_lying_api(kiosk: Kiosk, case: str) -> None:
    health, roster, row, must_say = DOCTOR_CASES[case]
    rows = _doctor_api(kiosk, health, roster)
    assert rows["api tls"]["status"] == "pass"  # the rows before the lie are kept
    assert rows[row]["status"] in ("fail", "warn")
    assert must_say in rows[row]["detail"] and rows[row]["fix"]
    assert "crashed" not in json_text(rows)


def json_text(rows: dict[str, dict[str, str]]) -> str:
    return " ".join(r["detail"] for r in rows.values())
