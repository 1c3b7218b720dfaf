"""The real server: uvicorn over HTTPS on loopback in a subprocess, with fault injection,
mTLS, and a stop/start that keeps what was stored."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hil import pki as pkimod
from hil.refapi.server import RefApi
from hil.refapi.testing import SimDevice


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefApi]:
    api = RefApi(tmp_path_factory.mktemp("refapi-tls"), faults=True)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _client(api: RefApi, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(
        base_url=api.url,
        verify=ssl.create_default_context(cafile=str(api.ca)),
        timeout=timeout,
    )


def _enrolled(api: RefApi, c: httpx.Client) -> SimDevice:
    dev = SimDevice()
    r = c.post("/v1/enrol", json=dev.enrol_body(api.mint_code()))
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["seal_public_key"] == api.pki.seal_public_b64()
    assert answer["api_ca_pem"] == api.ca.read_text()
    return dev


def _push(
    c: httpx.Client, dev: SimDevice, records: list[str], key: str | None = None
) -> httpx.Response:
    path = f"/v1/devices/{dev.device}/records"
    body = json.dumps({"records": records}).encode()
    headers = dev.auth("POST", path, body) | {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return c.post(path, content=body, headers=headers)


def _faults(api: RefApi, plan: list[str]) -> None:
    with api.admin() as a:
        assert a.post("/v1/admin/faults", json=plan).status_code == 200


def test_only_tls_is_spoken_and_the_certificate_names_loopback(server: RefApi) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=2)
    with pytest.raises(httpx.ConnectError):  # an unknown CA is refused by the client
        httpx.get(server.url + "v1/health", timeout=2)
    with _client(server) as c:
        assert c.get("/v1/health").json() == {"status": "ok"}


def test_batches_over_tls_are_stored_once_and_replayed_by_key(server: RefApi) -> None:
    with _client(server) as c:
        dev = _enrolled(server, c)
        records = dev.records(50)
        first = _push(c, dev, records, key="k1")
        assert first.status_code == 200
        assert [r["status"] for r in first.json()["results"]] == ["accepted"] * 50
        assert _push(c, dev, records, key="k1").json() == first.json()
        again = _push(c, dev, records[40:], key="k2").json()
        assert [r["status"] for r in again["results"]] == ["duplicate"] * 10
    store = server.storage()
    try:
        assert store.count(dev.device) == 50
    finally:
        store.close()


def test_injected_faults_answer_as_planned_then_clear(server: RefApi) -> None:
    with _client(server, timeout=5) as c:
        dev = _enrolled(server, c)
        _faults(server, ["500", "503:7", "garbage"])
        path = f"/v1/devices/{dev.device}/heartbeat"
        hb = {"queue_depth": 0}
        body = json.dumps(hb).encode()

        def beat() -> httpx.Response:
            return c.post(path, content=body, headers=dev.auth("POST", path, body))

        assert beat().status_code == 500
        busy = beat()
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
        garbage = beat()
        assert garbage.status_code == 200
        with pytest.raises(ValueError):  # not JSON, though it says it is
            json.loads(garbage.content)
        assert beat().status_code == 200  # the plan is used up
        # a stall: the request is held past the client's deadline
        _faults(server, ["stall:3"])
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.post(path, content=body, headers=dev.auth("POST", path, body), timeout=0.5)
        assert time.monotonic() - started < 2.5


def test_a_lying_server_commits_yet_the_resend_creates_no_duplicates(server: RefApi) -> None:
    with _client(server) as c:
        dev = _enrolled(server, c)
        records = dev.records(20)
        _faults(server, ["lie"])
        lied = _push(c, dev, records, key="lie-1")
        assert lied.status_code == 500
        # the device resends the same batch under the same key: the stored answer
        resent = _push(c, dev, records, key="lie-1")
        assert [r["status"] for r in resent.json()["results"]] == ["accepted"] * 20
        # or under a new key: per-record duplicates
        fresh = _push(c, dev, records, key="lie-2")
        assert [r["status"] for r in fresh.json()["results"]] == ["duplicate"] * 20
    store = server.storage()
    try:
        assert store.count(dev.device) == 20
    finally:
        store.close()


def test_faults_are_refused_unless_the_server_was_started_with_them(tmp_path: Path) -> None:
    api = RefApi(tmp_path)
    api.start()
    try:
        with api.admin() as a:
            r = a.post("/v1/admin/faults", json=["500"])
            assert r.status_code == 403 and r.json()["error"] == "faults_disabled"
    finally:
        api.stop()


def test_a_stopped_server_comes_back_on_the_same_port_with_its_data(tmp_path: Path) -> None:
    api = RefApi(tmp_path)
    api.start()
    try:
        with _client(api) as c:
            dev = _enrolled(api, c)
            chain = dev.records(5)
            assert _push(c, dev, chain[:3]).status_code == 200
        api.stop()
        with _client(api, timeout=2) as c, pytest.raises(httpx.ConnectError):
            c.get("/v1/health")
        api.start()
        with _client(api) as c:
            answer = _push(c, dev, chain).json()
        assert [r["status"] for r in answer["results"]] == ["duplicate"] * 3 + ["accepted"] * 2
    finally:
        api.stop()


def test_mtls_requires_a_client_certificate_from_the_api_ca(tmp_path: Path) -> None:
    api = RefApi(tmp_path, client_ca=True)
    api.start()
    try:
        plain = ssl.create_default_context(cafile=str(api.ca))
        with pytest.raises(httpx.HTTPError):
            httpx.get(api.url + "v1/health", verify=plain, timeout=2)
        # a certificate from another CA is refused too
        other = pkimod.create(tmp_path / "other-ca")
        cert, key = pkimod.issue_client_cert(other, "kiosk-0001", tmp_path / "other-certs")
        foreign = ssl.create_default_context(cafile=str(api.ca))
        foreign.load_cert_chain(str(cert), str(key))
        with pytest.raises(httpx.HTTPError):
            httpx.get(api.url + "v1/health", verify=foreign, timeout=2)
        cert, key = pkimod.issue_client_cert(api.pki, "kiosk-0001", tmp_path / "certs")
        assert (tmp_path / "certs" / "kiosk-0001.key").stat().st_mode & 0o777 == 0o600
        ours = ssl.create_default_context(cafile=str(api.ca))
        ours.load_cert_chain(str(cert), str(key))
        assert httpx.get(api.url + "v1/health", verify=ours, timeout=5).status_code == 200
    finally:
        api.stop()
