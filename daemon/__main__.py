"""``kiosk``: the daemon's command line.

``kiosk run`` is kiosk.service (hardware, check-in flow, local UI); ``kiosk sync`` is
kiosk-sync.service (network). A configuration error exits with 78 (EX_CONFIG) so systemd
stops restarting (``RestartPreventExitStatus=78``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from daemon import __version__
from daemon.config import DEFAULT_PATH, EX_CONFIG, load_config
from daemon.errors import ConfigError, DeviceKeyError, KioskError
from daemon.logsetup import setup

log = logging.getLogger("kiosk")
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk", description="Probation check-in kiosk daemon")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "the check-in daemon: hardware, flow, local UI (kiosk.service)"),
        ("sync", "the sync daemon: records up, roster down (kiosk-sync.service)"),
        ("check-config", "validate the configuration file and exit"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", type=Path, default=DEFAULT_PATH, help=f"default {DEFAULT_PATH}")
        p.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup(args.log_level, "kiosk-sync" if args.command == "sync" else "kiosk")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        print(f"kiosk: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    try:
        if args.command == "check-config":
            print(f"{args.config}: ok")
            return 0
        if args.command == "sync":
            from daemon.syncd import run_sync

            asyncio.run(run_sync(cfg))
            return 0
        from daemon.app import run_kiosk

        asyncio.run(run_kiosk(cfg))
        return 0
    except ConfigError as exc:
        print(f"kiosk: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except DeviceKeyError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KioskError as exc:
        log.error("stopping: %s (%s)", exc, exc.reason)
        return EX_UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
