"""A throwaway PostgreSQL server for the tests and benchmarks of the reference API's
PostgreSQL backend: its own cluster in a temporary folder, listening only on a Unix socket in
that folder (no TCP port at all), durable as a real one (``fsync`` on), removed on stop.

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin``; package
``postgresql-15``). PostgreSQL refuses to run as root, so as root it runs as the ``postgres``
user the package creates.

May import: the standard library, psycopg.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries here (the message says how to get them)."""


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts)
    if found:
        return found[-1].parent
    which = shutil.which("postgres")
    if which:
        return Path(which).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (apt-get install postgresql-15; hil/test_deps.sh does)"
    )


class TempPostgres:
    def __init__(self) -> None:
        self.bin = _bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        self.data = self.folder / "data"
        self.socket = self.folder
        self.port = 5432
        self._proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user") from None
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed: {(done.stderr or done.stdout)[-400:]}")

    def start(self, timeout_s: float = 30.0) -> TempPostgres:
        # --no-sync only for initdb's own files; the running server fsyncs as in production
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        log = (self.folder / "server.log").open("wb")
        self._proc = subprocess.Popen(
            [*self._as, str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.socket),
             "-p", str(self.port), "-c", "listen_addresses=", "-c", "fsync=on",
             "-c", "synchronous_commit=on", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.folder / "server.log").read_text(errors="replace")[-600:]
                    self.stop()
                    raise PostgresUnavailable(f"PostgreSQL did not start: {tail}") from None
                time.sleep(0.1)

    def dsn(self, dbname: str) -> str:
        return f"host={self.socket} port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # SIGTERM: "smart" shutdown, then...
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        shutil.rmtree(self.folder, ignore_errors=True)
