"""Logging for journald: structured fields over journald's native protocol when running under
systemd, plain lines on stdout otherwise.

Every entry carries ``SYSLOG_IDENTIFIER`` (``kiosk`` or ``kiosk-sync``, stable), ``PRIORITY``,
``LOGGER``, ``CODE_FILE``/``CODE_LINE``, and any ``extra={"kiosk_reason": ..., "kiosk_seq":
...}`` as ``KIOSK_REASON=``/``KIOSK_SEQ=`` fields, so an engineer can ``journalctl
KIOSK_REASON=disk_full``. Never log personal data: case references, answers, templates and
photos stay out of logs (sequence numbers and hash prefixes are fine).

May import: the standard library only.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def _field(name: str, value: object) -> bytes:
    data = str(value).encode("utf-8", "replace")
    key = name.upper().encode()
    if b"\n" in data:  # the binary-safe form: name, newline, 64-bit little-endian length, data
        return key + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
    return key + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Sends each record to journald as one native-protocol datagram."""

    def __init__(self, identifier: str, path: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [
                _field("MESSAGE", self.format(record)),
                _field("PRIORITY", _PRIORITY.get(record.levelno, 6)),
                _field("SYSLOG_IDENTIFIER", self.identifier),
                _field("LOGGER", record.name),
                _field("CODE_FILE", record.pathname),
                _field("CODE_LINE", record.lineno),
                _field("CODE_FUNC", record.funcName),
            ]
            for key, value in record.__dict__.items():
                if key.startswith("kiosk_"):
                    parts.append(_field(key, value))
            self.sock.sendto(b"".join(parts), self.path)
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def setup(level: str = "INFO", identifier: str = "kiosk") -> None:
    handler: logging.Handler
    if os.environ.get("JOURNAL_STREAM") and JOURNAL_SOCKET.exists():
        handler = JournalHandler(identifier)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
