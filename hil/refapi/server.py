"""Run the real reference API (uvicorn, HTTPS) in a subprocess on 127.0.0.1, for tests, the
demo and benchmarks. It can be stopped and started again on the same port, which is how the
demo and the tests take "the network" away and bring it back."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hil import pki as pkimod
from hil.refapi.storage import SqliteStorage, Storage

ROOT = Path(__file__).resolve().parents[2]


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now (the kernel's pick; closed
    again at once, so a caller binds it soon after: fine for tests and the demo, which own
    the loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RefApi:
    """A reference API in ``folder`` (database, PKI, admin token)."""

    folder: Path
    faults: bool = False
    client_ca: bool = False
    #: its kiosks run simulated drivers on purpose (``serve --simulated-expected``)
    simulated_expected: bool = False
    port: int = 0
    #: a PostgreSQL DSN to store in instead of SQLite in ``folder`` (several RefApi processes
    #: may share one)
    database: str | None = None
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    _proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data = self.folder / "data"
        self.pki = pkimod.Pki(self.folder / "pki")
        if not self.pki.ca_cert.exists():
            pkimod.create(self.pki.folder)
        token_file = self.folder / "admin.token"
        if token_file.exists():
            self.admin_token = token_file.read_text().strip()
        else:
            token_file.write_text(self.admin_token)
            token_file.chmod(0o600)
        if not self.port:
            self.port = free_loopback_port()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def ca(self) -> Path:
        return self.pki.ca_cert

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> None:
        self.storage().close()  # `serve` never makes a database: this is `kiosk-refapi init`
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: responses are not held back by Nagle's algorithm
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        args = [
            sys.executable, "-m", "hil.refapi", "serve",
            *(["--database", self.database] if self.database else ["--data", str(self.data)]),
            "--fd", str(sock.fileno()),
            "--tls-cert", str(self.pki.server_cert), "--tls-key", str(self.pki.server_key),
            "--ca", str(self.pki.ca_cert),
            "--admin-token-file", str(self.folder / "admin.token"),
            "--seal-public", self.pki.seal_public_b64(),
        ]  # fmt: skip
        if self.faults:
            args.append("--faults")
        if self.simulated_expected:
            args.append("--simulated-expected")
        if self.client_ca:
            args += ["--client-ca", str(self.pki.ca_cert)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._proc = subprocess.Popen(args, pass_fds=[sock.fileno()], env=env, cwd=ROOT)
        sock.close()
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.client_ca:  # the readiness probe needs a client certificate of its own
            cert, key = pkimod.issue_client_cert(self.pki, "rig-probe", self.pki.folder)
            ctx.load_cert_chain(str(cert), str(key))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the reference API exited with {self._proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "v1/health", verify=ctx, timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the reference API did not come up in time")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    # --- admin conveniences ------------------------------------------------------------------
    def admin(self, operator: str = "hil-rig", purpose: str = "audit") -> httpx.Client:
        """An admin client acting as ``operator`` for ``purpose`` (``X-Operator``,
        ``X-Purpose``: reads of personal data need both, and the access log keeps them)."""
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca)),
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "X-Operator": operator,
                "X-Purpose": purpose,
            },
            timeout=30,
        )

    def mint_code(self) -> str:
        with self.admin() as c:
            r = c.post("/v1/admin/enrolment-codes")
            r.raise_for_status()
            return str(r.json()["code"])

    def storage(self) -> Storage:
        """Read the API's database directly (for checks; the server may be running)."""
        if self.database:
            from hil.refapi.pgstore import PostgresStorage

            return PostgresStorage(self.database)
        return SqliteStorage(self.data / "refapi.sqlite3")


@contextlib.contextmanager
def running(folder: Path, **kw: object) -> Iterator[RefApi]:
    api = RefApi(folder, **kw)  # type: ignore[arg-type]
    api.start()
    try:
        yield api
    finally:
        api.stop()
