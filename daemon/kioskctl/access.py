"""Can kioskctl, as the user it runs as, use the kiosk's data directory? And can the kiosk?

An engineer who forgets ``sudo`` and a data partition the kernel has made read-only both used
to surface as "attempt to write a readonly database", "the record store is damaged" or a
PermissionError traceback. This names the real problem and the fix:

- ``data_permission``: this user may not read or write the directory or a file in it: run
  kioskctl as root or as the kiosk user;
- ``data_read_only``: nobody can write there (the file system is mounted read-only, or the
  directory has no write permission at all), so the kiosk cannot save check-ins either.

The outbox is SQLite in WAL mode: even reading it creates files beside it, so reading it needs
a directory this user may write.

May import: the standard library, ``daemon.errors``, ``daemon.outbox``.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import OutboxCorrupt, StorageError
from daemon.outbox import Outbox

AS_KIOSK = (
    "run kioskctl as root (sudo kioskctl ...) or as the kiosk user (sudo -u kiosk kioskctl ...)"
)


def whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def denied(path: Path | str) -> str:
    """What to say about a file this user may not read (or write)."""
    return f"permission denied reading {path} as {whoami()}"


class DataAccessError(StorageError):
    """kioskctl cannot use the data directory: ``detail`` says what, ``fix`` what to do."""

    def __init__(self, detail: str, fix: str, *, reason: str) -> None:
        super().__init__(f"{detail}; {fix}", reason=reason)
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Problem:
    #: ``data_permission`` or ``data_read_only``
    reason: str
    detail: str
    fix: str

    def error(self) -> DataAccessError:
        return DataAccessError(self.detail, self.fix, reason=self.reason)


def read_only(data_dir: Path) -> Problem | None:
    """Nobody, the kiosk included, can write in ``data_dir``: a read-only mount, or a
    directory without any write permission. None when it does not exist."""
    try:
        mode = stat.S_IMODE(data_dir.stat().st_mode)
        flags = os.statvfs(data_dir).f_flag
    except OSError:
        return None
    if flags & os.ST_RDONLY:
        return Problem(
            "data_read_only",
            f"the data partition holding {data_dir} is mounted read-only: the kiosk cannot "
            "save check-ins",
            "the kernel does this after disk errors: read them with `journalctl -k -b`, then "
            "reboot (the file system is checked at boot); if it comes back, replace the SD card",
        )
    if not mode & 0o222:
        return Problem(
            "data_read_only",
            f"the data directory {data_dir} is read-only (mode {mode:04o}): the kiosk cannot "
            "save check-ins",
            f"give it back to the kiosk user: `sudo chown kiosk:kiosk {data_dir} && sudo chmod "
            f"0750 {data_dir}`, then `sudo systemctl restart kiosk kiosk-sync`",
        )
    return None


def outbox_problem(data_dir: Path, outbox_file: str) -> Problem | None:
    """Why this user cannot open the outbox in ``data_dir``, or None (also when the directory
    does not exist: callers say that themselves). Root passes a directory without write
    permission (it can still read the records); :func:`read_only` says that to doctor."""
    try:
        data_dir.stat()
    except FileNotFoundError:
        return None
    except PermissionError:
        return Problem("data_permission", f"permission denied reading {data_dir} as {whoami()}",
                       AS_KIOSK)  # fmt: skip
    if not os.access(data_dir, os.R_OK | os.X_OK):
        return Problem("data_permission", f"permission denied reading {data_dir} as {whoami()}",
                       AS_KIOSK)  # fmt: skip
    path = data_dir / outbox_file
    if os.access(data_dir, os.W_OK) and (not path.exists() or os.access(path, os.R_OK | os.W_OK)):
        return None
    return read_only(data_dir) or Problem(
        "data_permission",
        f"permission denied opening the outbox {path} as {whoami()} (SQLite writes beside it "
        "even to read it)",
        AS_KIOSK,
    )


def open_outbox(outbox: Outbox) -> Outbox:
    """``outbox.open()``, with a permission or read-only problem named (DataAccessError)
    instead of SQLite's "attempt to write a readonly database" or a PermissionError.
    Raises what ``open`` raises otherwise (OutboxCorrupt, StorageError)."""
    problem = outbox_problem(outbox.data_dir, Outbox.FILE)
    if problem is not None:
        raise problem.error()
    try:
        return outbox.open()
    except OutboxCorrupt:
        raise
    except StorageError as exc:
        problem = read_only(outbox.data_dir)
        if problem is not None:
            raise problem.error() from exc
        raise
    except PermissionError as exc:
        raise Problem("data_permission", denied(exc.filename or outbox.data_dir),
                      AS_KIOSK).error() from exc  # fmt: skip
