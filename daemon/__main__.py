"""``kiosk``: the daemon's command line.

``kiosk run`` is kiosk.service (hardware, check-in flow, local UI); ``kiosk sync`` is
kiosk-sync.service (network). A configuration error exits with 78 (EX_CONFIG) so systemd
stops restarting (``RestartPreventExitStatus=78``); the error is said once, on standard error,
or under systemd in the journal. The API's TLS files are checked by ``sync`` and
``check-config``; ``run`` does not use them, so a wrong one only logs a warning there: the
kiosk keeps taking check-ins while kiosk-sync waits for the fix.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from daemon import __version__
from daemon.config import DEFAULT_PATH, EX_CONFIG, load_config
from daemon.errors import ConfigError, DeviceKeyError, KioskError
from daemon.logsetup import setup

log = logging.getLogger("kiosk")
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69


def _config_error(command: str, exc: ConfigError) -> int:
    """Say it once: on the terminal, or (under systemd) in the journal with its reason."""
    if command != "check-config" and os.environ.get("JOURNAL_STREAM"):
        log.error("configuration error: %s", exc, extra={"kiosk_reason": exc.reason})
    else:
        print(f"kiosk: configuration error: {exc}", file=sys.stderr)
    return EX_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description="Probation check-in kiosk daemon")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    # --config is taken before the command or after it (kioskctl takes it in both places too)
    parser.add_argument("--config", type=Path, default=DEFAULT_PATH, help=f"default {DEFAULT_PATH}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "the check-in daemon: hardware, flow, local UI (kiosk.service)"),
        ("sync", "the sync daemon: records up, roster down (kiosk-sync.service)"),
        ("check-config", "validate the configuration file (and the files it names) and exit"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--config", type=Path, default=argparse.SUPPRESS, help=f"default {DEFAULT_PATH}"
        )
        p.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup(args.log_level, "kiosk-sync" if args.command == "sync" else "kiosk")
    try:
        # kiosk.service does not use the API's TLS files: a wrong one stops kiosk-sync (78),
        # never the check-ins
        cfg = load_config(args.config, check_files=args.command != "run")
    except ConfigError as exc:
        return _config_error(args.command, exc)
    try:
        if args.command == "check-config":
            print(f"{args.config}: ok")
            return 0
        if args.command == "sync":
            from daemon.syncd import run_sync

            asyncio.run(run_sync(cfg))
            return 0
        # the API's TLS files are kiosk-sync's, which refuses to start on a bad one (exit 78)
        # and doctor's `api tls` row names it: check-ins go on here without them
        from daemon.app import run_kiosk

        asyncio.run(run_kiosk(cfg))
        return 0
    except ConfigError as exc:
        return _config_error(args.command, exc)
    except DeviceKeyError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KioskError as exc:
        log.error("stopping: %s (%s)", exc, exc.reason)
        return EX_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
