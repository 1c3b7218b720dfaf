"""``kioskctl``: the field engineer's command line. Run ``kioskctl --help`` or
``kioskctl <command> --help``; docs/kioskctl.md is the manual.

Exit status: 0 done (doctor: no failures); 1 a check failed or the command could not do its
job (the message says what to do next); 2 wrong usage (argparse, or a UsageError: a bad
argument); 78 the configuration is wrong. ``--config`` is taken before or after the command.

May import: everything in ``daemon``; hardware only through ``daemon.kioskctl.parts``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from daemon import __version__
from daemon.clock import Clock, SystemClock
from daemon.config import DEFAULT_PATH, EX_CONFIG, Config, load_config
from daemon.errors import ConfigError, KioskError, UsageError
from daemon.keys import write_private_file
from daemon.kioskctl import access, hwcmd, outboxcmd, report
from daemon.kioskctl import bundle as bundlemod
from daemon.kioskctl import status as statusmod
from daemon.kioskctl.context import Context
from daemon.kioskctl.doctor import doctor
from daemon.kioskctl.identity import load_enrolment
from daemon.kioskctl.parts import Parts
from daemon.kioskctl.progress import Progress
from daemon.purposes import PURPOSES, operator_id

#: wrong usage: a bad argument (argparse uses it too)
EX_USAGE = 2

EXAMPLES = """\
first steps on a new kiosk:
  kioskctl provision --device-id kiosk-0042 --api-url https://api.example/ \\
                     --ca ./probation-ca.pem --code=ABCD-1234
  kioskctl doctor
on a running kiosk:
  kioskctl status                 what the front desk sees
  kioskctl doctor --no-hardware   checks that leave the running service alone
  sudo systemctl stop kiosk && kioskctl doctor && sudo systemctl start kiosk
to hand over to support:
  kioskctl bundle --out /tmp/kiosk-bundle.tar.gz
"""


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kw: Any
) -> argparse.ArgumentParser:
    """A (sub)command's parser; it takes ``--config`` too, so ``kioskctl status --config X``
    works as well as ``kioskctl --config X status`` (as ``kiosk`` does)."""
    parser = sub.add_parser(name, **kw)
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=f"configuration file (default {DEFAULT_PATH})")  # fmt: skip
    return parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kioskctl",
        description="Install, check and look after a probation check-in kiosk.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"kioskctl {__version__}")
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_PATH,
        help=f"configuration file (default {DEFAULT_PATH})",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pr = _add(
        sub,
        "provision",
        help="give this kiosk its key and enrol it with the central API",
        description="Create the device key, enrol it with the central API using a one-time "
        "code, fetch the API's CA and photo-sealing key, and write the configuration. Refuses "
        "to replace an existing identity unless --force (which records a key_rotation signed "
        "by the old key). Stop kiosk.service and kiosk-sync.service first.",
    )
    pr.add_argument(
        "--code",
        required=True,
        help="one-time enrolment code from the central team (--code=CODE if it starts with -)",
    )
    pr.add_argument("--device-id", help="this kiosk's id, e.g. kiosk-0042 (kept if already set)")
    pr.add_argument("--api-url", help="the central API, https://... (kept if already set)")
    pr.add_argument("--ca", type=Path, help="CA bundle to trust for the enrolment call")
    pr.add_argument("--data-dir", type=Path, help="where the key and outbox live (/var/lib/kiosk)")
    pr.add_argument("--alg", choices=["ES256", "EdDSA"], default="ES256", help="key type (ES256)")
    pr.add_argument("--force", action="store_true", help="replace an existing identity (rotation)")
    pr.add_argument(
        "--allow-simulated", action="store_true", default=None,
        help="permit simulated hardware (demo and test rigs only)",
    )  # fmt: skip

    d = _add(
        sub,
        "doctor",
        help="check every part and print pass / warn / fail with the fix",
        description="Checks the key, disk, outbox, clock, API (DNS, TLS, certificate expiry, "
        "clock skew, enrolment), fingerprint sensor, camera, GPIO, display and systemd units. "
        "Exit status 1 if anything failed.",
    )
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument(
        "--no-hardware", action="store_true",
        help="skip sensor, camera, GPIO, display and printer (safe while kiosk.service runs)",
    )  # fmt: skip

    s = _add(sub, "status", help="one screen: running, last check-in, last sync, alerts")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    se = _add(sub, "sensor", help="fingerprint sensor admin (stop kiosk.service first)")
    ses = se.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add(ses, "info", help="what the sensor reports: baud, capacity, library count")
    sb = _add(ses, "set-baud", help="move the sensor to another baud rate (kept in its flash)")
    sb.add_argument("baud", type=int, choices=[9600, 19200, 38400, 57600, 115200])
    sb.add_argument(
        "--from", dest="from_baud", type=int, help="the rate it uses now (default: find it)"
    )
    sc = _add(ses, "clear-library", help="erase templates stored in the sensor's flash")
    sc.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _add(ses, "test-match", help="enrol your finger in RAM and match it (nothing stored)")

    ca = _add(sub, "camera", help="camera tools")
    cas = ca.add_subparsers(dest="action", required=True, metavar="ACTION")
    snap = _add(cas, "snap", help="save an aiming image of the empty lobby (never uploaded)")
    snap.add_argument("--out", type=Path, help="where to save the JPEG (default ./aim-<time>.jpg)")

    ob = _add(sub, "outbox", help="the local queue of signed records")
    obs = ob.add_subparsers(dest="action", required=True, metavar="ACTION")
    ol = _add(obs, "list", help="seq, state, type, time, flags (no personal data)")
    ol.add_argument("--parked", action="store_true", help="only records the API rejected")
    _add(obs, "verify", help="verify signatures and the hash chain of every record held")
    oa = _add(obs, "send-again", help="send parked records again (the API's fault is fixed)")
    which = oa.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, nargs="+", help="these records (seq numbers)")
    which.add_argument("--reason", help="every record parked for this reason (as listed)")
    which.add_argument("--all", action="store_true", help="every parked record")
    oe = _add(obs, "export", help="compact JWS lines for an auditor (logged: who and why)")
    oe.add_argument(
        "--operator",
        required=True,
        type=operator_id,
        help="your staff number (or a service id), kept in a signed record",
    )
    oe.add_argument(
        "--purpose",
        required=True,
        choices=list(PURPOSES),
        help="why: " + "; ".join(f"{k}: {v}" for k, v in PURPOSES.items()),
    )
    oe.add_argument("--out", type=Path, help="file to write (default: standard output)")
    oe.add_argument("--from", dest="from_seq", type=int, default=1, help="first seq to export")

    b = _add(sub, "bundle", help="diagnostics archive with personal data removed")
    b.add_argument("--out", type=Path, help="archive path (default ./kiosk-bundle-<device>.tar.gz)")
    b.add_argument("--log-file", type=Path, action="append", default=[], help="add a log file")

    _add(sub, "sync", help="send the queued records to the API now (with progress)")

    sf = _add(
        sub,
        "staff",
        help="who may open staff mode on the kiosk, each with their own PIN",
        description="Records of staff actions name the member of staff by the id given here "
        "(a staff number, not a name). kiosk.service reads the change when restarted.",
    )
    sfs = sf.add_subparsers(dest="staff_command", required=True)
    _add(sfs, "list", help="the staff ids that can open staff mode (never the PINs)")
    sa = _add(sfs, "add", help="add a member of staff; asks for their PIN twice")
    sa.add_argument("id", help="how records will name them, e.g. rec-0412")
    sa.add_argument("--pin-stdin", action="store_true", help="read the PIN twice from stdin")
    sr = _add(sfs, "remove", help="remove a member of staff (`staff`: the shared PIN)")
    sr.add_argument("id")

    st = _add(
        sub,
        "selftest",
        help="prove the running kiosk works (services, sensor, camera, outbox, screen)",
        description="Asks the running services, not the hardware: safe while the kiosk runs. "
        "With --commit, keeps an update that passes and rejects one that fails "
        "(docs/updates.md). Exit status 1 if anything failed.",
    )
    st.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="retry for up to S seconds until everything passes (after a boot)",
    )
    st.add_argument(
        "--commit",
        action="store_true",
        help="mark this slot good (or, on a failed trial boot, bad and reboot)",
    )
    st.add_argument("--json", action="store_true", help="machine-readable output")

    fl = _add(
        sub,
        "flash",
        help="write a kiosk image to an SD card (on your laptop), every block checked",
        description="Writes IMAGE (with its IMAGE.bmap) to TARGET with bmaptool: only blocks "
        "holding data, each checked against the block map. Refuses a mounted disk, a fixed disk "
        "(unless --force) and a card that is too small. Needs no kiosk configuration.",
    )
    fl.add_argument("image", type=Path, help="kiosk.img (kiosk.img.bmap beside it)")
    fl.add_argument("target", type=Path, help="the card, e.g. /dev/sdb or /dev/mmcblk0; or a file")
    fl.add_argument("--force", action="store_true", help="write to a disk that says it is fixed")

    up = _add(
        sub,
        "update",
        help="install a signed update bundle and reboot into it once, as a trial",
        description="Installs the RAUC bundle into the other slot, waits until nobody is "
        "checking in, then reboots once into it. The update is kept only if its self-test "
        "passes; otherwise the kiosk comes back on the current system by itself.",
    )
    up.add_argument("bundle", type=Path, nargs="?", help="the .raucb bundle")
    up.add_argument("--no-reboot", action="store_true", help="install only")
    up.add_argument(
        "--reboot-only",
        action="store_true",
        help="reboot into an update installed earlier with --no-reboot",
    )
    up.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        metavar="S",
        help="how long to wait for a check-in in progress to finish (600)",
    )
    return p


def main(
    argv: list[str] | None = None,
    *,
    parts: Parts | None = None,
    clock: Clock | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The console script. ``parts``, ``clock`` and the streams are injected by tests."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _parser().parse_args(argv)
    clock = clock or SystemClock()
    try:
        if args.command == "provision":
            return _provision(args, clock, out)
        if args.command == "flash":  # on the engineer's laptop: no kiosk configuration there
            from daemon.kioskctl.flash import flash

            def say(line: str) -> None:
                print(line, file=out, flush=True)

            return flash(args.image, args.target, force=args.force, say=say,
                         terminal=err.isatty())  # fmt: skip
        # only `sync` uses the API's TLS files; doctor reports a wrong one in its api rows, and
        # the other commands (staff, status, outbox...) must work while it is being fixed
        cfg = load_config(args.config, check_files=args.command == "sync")
        ctx = Context(cfg, parts=parts or Parts(), clock=clock)
        return _dispatch(args, ctx, out, err)
    except ConfigError as exc:
        print(f"kioskctl: configuration error: {exc}", file=err)
        return EX_CONFIG
    except UsageError as exc:
        print(f"kioskctl: {exc.message}", file=err)
        return EX_USAGE
    except PermissionError as exc:  # a file no check above foresaw: never a traceback
        where = exc.filename or "a file"
        print(f"kioskctl: permission denied on {where} as {access.whoami()}: {access.AS_KIOSK}",
              file=err)  # fmt: skip
        return 1
    except KioskError as exc:
        print(f"kioskctl: {exc.message} [{exc.reason}]", file=err)
        return 1


def _provision(args: argparse.Namespace, clock: Clock, out: TextIO) -> int:
    from daemon.kioskctl.provision import provision

    done = provision(
        args.config,
        code=args.code,
        clock=clock,
        device_id=args.device_id,
        api_url=args.api_url,
        ca=args.ca,
        data_dir=args.data_dir,
        alg=args.alg,
        force=args.force,
        allow_simulated=args.allow_simulated,
    )
    what = "re-keyed" if done.rotated else "provisioned"
    print(f"{done.device} {what}: key {done.key_home}, configuration {done.config_path}", file=out)
    if done.rotation_seq is not None:
        print(
            f"key_rotation record written at seq {done.rotation_seq}, signed by the old key. "
            "The central API switches this kiosk to the new key when it receives that record: "
            "run `kioskctl sync` (or start kiosk-sync.service). Until then it answers requests "
            "signed by the new key (heartbeats, photo uploads) with 401; they are retried and "
            "nothing is lost.",
            file=out,
        )
    for warning in done.warnings:
        print(f"warning: {warning}", file=out)
    print("next: `kioskctl doctor`, then start kiosk.service and kiosk-sync.service", file=out)
    return 0


def _selftest_or_update(args: argparse.Namespace, ctx: Context, out: TextIO, err: TextIO) -> int:
    from daemon.kioskctl import selftest

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    slots = selftest.open_slots()
    if args.command == "update":
        if slots is None:
            say("this kiosk has no A/B slots (not the kiosk image): updates go through reflashing")
            return 1
        if args.reboot_only:
            return selftest.reboot_into_trial(ctx, slots, max_wait_s=args.max_wait, say=say)
        if args.bundle is None:
            say("name the bundle to install, e.g. kioskctl update kiosk-1.4.0.raucb")
            return 2
        return selftest.update(
            ctx, args.bundle, slots, reboot=not args.no_reboot, max_wait_s=args.max_wait,
            say=say, progress=Progress("install", 100, stream=err),
        )  # fmt: skip
    rows = selftest.wait_for_pass(ctx, args.wait) if args.wait > 0 else selftest.gather(ctx)
    decision = selftest.decide(ctx, rows, slots) if args.commit else None
    if args.json:
        doc = json.loads(report.to_json(rows))
        if decision is not None:
            doc["decision"] = {"action": decision.action, "message": decision.message}
        print(json.dumps(doc, indent=2), file=out)
    else:
        print(report.to_table(rows), file=out)
        if decision is not None:
            say(decision.message)
    return decision.exit if decision is not None else report.exit_status(rows)


def _dispatch(args: argparse.Namespace, ctx: Context, out: TextIO, err: TextIO) -> int:
    cfg: Config = ctx.cfg
    if args.command in ("selftest", "update"):
        return _selftest_or_update(args, ctx, out, err)
    if args.command == "staff":
        from daemon.kioskctl import staffcmd

        return staffcmd.run(args, ctx.cfg, out)
    if args.command == "doctor":
        checks = doctor(ctx, hardware=not args.no_hardware)
        print(report.to_json(checks) if args.json else report.to_table(checks), file=out)
        return report.exit_status(checks)
    if args.command == "status":
        st = statusmod.gather(ctx)
        if args.json:
            print(json.dumps(asdict(st), indent=2), file=out)
        else:
            print(statusmod.render(st, ctx.clock.wall()), file=out)
        return 0 if st.ok else 1
    if args.command == "sensor":
        return _sensor(args, ctx, out)
    if args.command == "camera":
        path, line = hwcmd.camera_snap(ctx, args.out)
        print(f"aiming image saved to {path}: {line} (kept on this kiosk only)", file=out)
        return 0
    if args.command == "outbox":
        return _outbox(args, ctx, out, err)
    if args.command == "bundle":
        target = args.out or Path.cwd() / f"kiosk-bundle-{cfg.device.id}.tar.gz"
        with Progress("bundle", 6 + len(args.log_file), stream=err) as bar:
            manifest = bundlemod.make_bundle(
                ctx, target, config_path=args.config, log_files=args.log_file, progress=bar
            )
        print(
            f"bundle written to {target}: {len(manifest['files'])} files, "
            f"{manifest['scrubbed_values']} personal values removed; keys, photos, templates "
            "and the outbox are never included",
            file=out,
        )
        if manifest["omitted"]:
            print("kioskctl: the bundle is incomplete; it could not include:", file=err)
            for what in manifest["omitted"]:
                print(f"  - {what}", file=err)
            print("kioskctl: for a complete bundle, run it as root: sudo kioskctl bundle", file=err)
            return 1
        return 0
    if args.command == "sync":
        from daemon.kioskctl.synccmd import sync_now

        with Progress("sync", None, stream=err) as bar:
            result = sync_now(ctx, bar)
        print(
            f"sent: {result.accepted} accepted, {result.duplicate} already held, "
            f"{result.rejected} rejected (parked); {result.left} still waiting",
            file=out,
        )
        return 0 if not result.rejected and not result.left else 1
    raise AssertionError(args.command)


def _sensor(args: argparse.Namespace, ctx: Context, out: TextIO) -> int:
    if args.action == "info":
        print(hwcmd.format_info(hwcmd.sensor_info(ctx), ctx.cfg.fingerprint), file=out)
        return 0
    if args.action == "set-baud":
        old, new = hwcmd.set_baud(ctx, args.baud, args.from_baud)
        print(f"sensor moved from {old} to {new} baud", file=out)
        s = ctx.cfg.fingerprint
        if new not in (s.baud, s.initial_baud):
            print(f"now set fingerprint.initial_baud = {new} in {ctx.cfg.device.id}'s "
                  "configuration", file=out)  # fmt: skip
        return 0
    if args.action == "clear-library":
        if not args.yes:
            answer = input("erase every template stored in the sensor's flash? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing erased", file=out)
                return 1
        n = hwcmd.clear_library(ctx)
        print(f"sensor library cleared ({n} templates erased)", file=out)
        return 0
    result = hwcmd.trial_match(ctx, lambda text: print(text, file=out, flush=True))
    m = result.match
    verdict = "MATCH" if m.matched else "NO MATCH"
    print(f"{verdict}: score {m.score} (threshold {m.threshold}); nothing was stored", file=out)
    return 0 if m.matched else 1


def _outbox(args: argparse.Namespace, ctx: Context, out: TextIO, err: TextIO) -> int:
    with outboxcmd.open_for(ctx) as outbox:
        if args.action == "list":
            print(outboxcmd.format_rows(list(outboxcmd.rows(outbox, parked_only=args.parked))),
                  file=out)  # fmt: skip
            return 0
        if args.action == "send-again":
            asked = outbox.ask_again(args.seq, reason=args.reason)
            if not asked:
                print("kioskctl: no parked record matches; nothing will be sent again "
                      "(`kioskctl outbox list --parked` shows them)", file=err)  # fmt: skip
                return 1
            shown = ", ".join(str(seq) for seq in asked[:20]) + (" …" if len(asked) > 20 else "")
            print(f"{len(asked)} parked record(s) will be sent again by kiosk-sync, within "
                  "seconds while the API is reachable (`kioskctl sync` sends them now); "
                  "rejected again, they stay parked with the new reason. seq: " + shown,
                  file=out)  # fmt: skip
            return 0
        if args.action == "verify":
            enrolment = load_enrolment(ctx.cfg.device.data_dir)
            pems = enrolment.all_public_pems() if enrolment else []
            if not pems:
                from daemon.keys import public_pem
                from daemon.kioskctl.checks_sys import load_key

                pems = [public_pem(load_key(ctx).public_key())]
            result = outboxcmd.verify(outbox, pems, ctx.cfg.device.id)
            print(result.describe(), file=out)
            return 0 if result.ok else 1
        if args.out is not None and not args.out.parent.is_dir():
            raise UsageError(
                f"--out {args.out}: the directory {args.out.parent} does not exist; create it "
                "or choose another (the file holds case references and answers: keep it on "
                "this kiosk or on an approved encrypted drive)"
            )
        total = outboxcmd.count_records(outbox)
        head = outbox.head()[0]
        nothing = f"kioskctl: no records from seq {args.from_seq} (the head is {head}); nothing "
        if args.from_seq > head:
            print(nothing + "was written", file=err)
            return 1
        # the export is a consultation of personal data: who and why go into the chain, as a
        # signed staff_action record, before anything leaves (no record, no export; DPA 2018
        # s.62 on the kiosk as on the API)
        where = outboxcmd.log_export(ctx, args.operator, args.purpose, args.from_seq)
        print(f"kioskctl: this export is logged in {where}", file=err)
        with Progress("export", total, stream=err) as bar:
            # the lines are the records: case references and answers. A file gets mode 0600
            # and appears whole or not at all (the project's private-file writer)
            buffer = io.StringIO() if args.out is not None else out
            n = outboxcmd.export(outbox, buffer, from_seq=args.from_seq, progress=bar)
        if n == 0:  # all of them pruned, or lost (the chain continued after an anchor)
            print(nothing + "is held here", file=err)
            return 1
        if args.out is not None:
            assert isinstance(buffer, io.StringIO)
            write_private_file(args.out, buffer.getvalue().encode("ascii"))
            print(f"{n} records written to {args.out} (mode 0600)", file=out)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
