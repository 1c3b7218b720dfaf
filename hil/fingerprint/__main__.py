"""``python -m hil.fingerprint --pty``: the emulated sensor on a pseudo-terminal.

Prints the device path, then serves until interrupted. Fingers are presented and lifted by a
scenario file (one command per line, run in order) and/or a control socket (a Unix stream
socket taking the same commands, one per line, answering ``ok`` or ``error: ...``):

    present SYN-0001 2 [good|worn|dry]    put finger 2 of synthetic person SYN-0001 on the glass
    lift                                  take it off
    wait 1.5                              pause (seconds; scenario files only)
    fault bad_checksum [times]            arm a fault (see hil.fingerprint.Fault)
    unplug / replug                       pull and restore the cable

May import: the standard library and hil.fingerprint.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from hil.fingerprint.emulator import Fault, SensorEmulator
from hil.fingerprint.fingers import Condition, VirtualFinger


def run_command(emu: SensorEmulator, line: str, *, allow_wait: bool = True) -> str:
    """Apply one control command; returns ``ok`` or raises ValueError with what was wrong."""
    words = line.split()
    if not words or words[0].startswith("#"):
        return "ok"
    verb, args = words[0].lower(), words[1:]
    if verb == "present" and 1 <= len(args) <= 3:
        finger = int(args[1]) if len(args) > 1 else 1
        condition = Condition(args[2].lower()) if len(args) > 2 else Condition.GOOD
        emu.present_finger(VirtualFinger(args[0], finger, condition))
    elif verb == "lift" and not args:
        emu.lift_finger()
    elif verb == "wait" and len(args) == 1 and allow_wait:
        time.sleep(float(args[0]))
    elif verb == "fault" and 1 <= len(args) <= 2:
        emu.inject(Fault(args[0].lower()), int(args[1]) if len(args) > 1 else 1)
    elif verb == "unplug" and not args:
        emu.unplug()
    elif verb == "replug" and not args:
        emu.replug()
    else:
        raise ValueError(f"unknown command {line.strip()!r}")
    return "ok"


def _serve_socket(emu: SensorEmulator, path: Path, stop: threading.Event) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.2)
    with server:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, conn.makefile("rw", encoding="utf-8") as f:
                for line in f:
                    try:
                        f.write(run_command(emu, line, allow_wait=False) + "\n")
                    except ValueError as exc:
                        f.write(f"error: {exc}\n")
                    f.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m hil.fingerprint", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pty", action="store_true", required=True, help="serve on a pseudo-terminal")
    p.add_argument(
        "--link", type=Path, help="also keep a symlink to the pty here (stable on replug)"
    )
    p.add_argument("--model", default="R503", help="R503, R307 or AS608 (default R503)")
    p.add_argument("--time-scale", type=float, default=1.0, help="1 real time, 0 no delays")
    p.add_argument("--baud", type=int, default=57600)
    p.add_argument("--password", type=lambda v: int(v, 0), default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenario", type=Path, help="file of control commands run in order")
    p.add_argument("--control", type=Path, help="Unix socket taking control commands")
    args = p.parse_args(argv)

    emu = SensorEmulator(
        args.model,
        time_scale=args.time_scale,
        seed=args.seed,
        baud=args.baud,
        password=args.password,
    )
    path = emu.start_pty(args.link)
    print(path, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = []
    if args.control is not None:
        threads.append(
            threading.Thread(target=_serve_socket, args=(emu, args.control, stop), daemon=True)
        )
        threads[-1].start()
    try:
        if args.scenario is not None:
            for n, line in enumerate(args.scenario.read_text().splitlines(), 1):
                if stop.is_set():
                    break
                try:
                    run_command(emu, line)
                except ValueError as exc:
                    print(f"{args.scenario}:{n}: {exc}", file=sys.stderr)
                    return 2
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=1.0)  # a client still connected does not keep us alive
        emu.close()
        if args.control is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
