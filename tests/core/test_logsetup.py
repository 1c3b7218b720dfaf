"""Structured journald entries, checked by receiving the native-protocol datagram."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from daemon.logsetup import JournalHandler


def test_journal_entries_carry_identifier_and_structured_fields(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    handler = JournalHandler("kiosk-sync", path)
    log = logging.getLogger("test.journal")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("queue backing up\nsecond line", extra={"kiosk_reason": "api_unreachable"})
        data = rx.recv(65536)
    finally:
        log.removeHandler(handler)
        handler.close()
        rx.close()
    assert b"SYSLOG_IDENTIFIER=kiosk-sync\n" in data
    assert b"PRIORITY=4\n" in data
    assert b"KIOSK_REASON=api_unreachable\n" in data
    msg = b"queue backing up\nsecond line"
    assert b"MESSAGE\n" + len(msg).to_bytes(8, "little") + msg + b"\n" in data
