"""Doctor checks that need no hardware: clock, disk, outbox, API, device key, systemd units.

Each function returns one or more :class:`~daemon.kioskctl.report.Check` rows with the fix
for each problem. Network steps are bounded by ``ctx.net_timeout_s`` each.

May import: the standard library, ``cryptography``, ``httpx``, ``daemon.*``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import ipaddress
import json
import os
import socket
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from daemon import growdata
from daemon.config import check_api_files
from daemon.diskspace import Level, Levels, headroom
from daemon.errors import ConfigError, DeviceKeyError, OutboxCorrupt, StorageError
from daemon.keys import SigningKey, public_pem, verify_signature
from daemon.kioskctl import access, apiclient
from daemon.kioskctl.context import Context
from daemon.kioskctl.identity import enrolment_path, load_enrolment
from daemon.kioskctl.report import Check, failed, passed, warned
from daemon.outbox import Outbox, read_anchor_hint
from daemon.roster import RosterInvalid, parse_roster
from daemon.sync import ROSTER_STATUS, tls_context
from daemon.tokenkey import key_backend

MB = 1024 * 1024
UNITS = ("kiosk.service", "kiosk-sync.service", "kiosk-ui.service")
#: the API refuses signed requests further than this from its clock (docs/api.md)
MAX_SKEW_S = 300
WARN_SKEW_S = 10
CERT_WARN_DAYS = 21
OLDEST_WARN_S = 24 * 3600
OLDEST_FAIL_S = 30 * 24 * 3600


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- clock -----------------------------------------------------------------------------------
def check_clock(ctx: Context) -> list[Check]:
    """The kernel says NTP has set the clock (drift against the API: see check_api)."""
    if ctx.clock.synced():
        return [passed("clock", "synchronised by NTP")]
    return [
        warned(
            "clock",
            "not synchronised: records are marked synced=false and the API re-bases their times",
            "check `timedatectl status`; NTP (UDP 123) must reach a time server",
        )
    ]


# --- disk and outbox -------------------------------------------------------------------------
def check_disk(ctx: Context) -> list[Check]:
    """Free space on the data partition against the three disk levels (daemon/diskspace.py),
    with the days left before the next step down at the recent rate."""
    data = ctx.cfg.device.data_dir
    levels = Levels.from_config(ctx.cfg.outbox)
    try:
        st = os.statvfs(data)
    except OSError:
        return [
            failed(
                "disk",
                f"the data directory {data} does not exist or cannot be read",
                "mount the data partition, or provision the device with `kioskctl provision`",
            )
        ]
    free = st.f_bavail * st.f_frsize
    read_only = access.read_only(data)
    if read_only is not None:
        return [
            failed("disk", f"{read_only.detail} ({free // MB} MB free)", read_only.fix),
            *_check_data_partition(data, st),
        ]
    level = levels.level(free)
    detail = f"{free // MB} MB free on {data}; {_headroom(ctx, free, levels)}"
    drain = (
        "restore the network so the queue drains (`kioskctl sync`): sent photos are deleted. "
        f"If nothing is waiting, find what else fills the partition (`du -xsh {data}/*`)"
    )
    if level == Level.FULL:
        row = failed(
            "disk",
            f"{detail}. Below the {levels.reserve // MB} MB reserve: new check-ins are "
            "refused and people are sent to reception",
            "free space on the data partition (`journalctl --vacuum-size=50M`, delete old "
            "bundles and aiming images); let the queue drain by restoring the network",
        )
    elif level == Level.NO_PHOTO:
        row = warned(
            "disk",
            f"{detail}. Below {levels.no_photo // MB} MB: check-ins are saved without photos",
            drain,
        )
    elif level == Level.LOW:
        row = warned(
            "disk",
            f"{detail}. Below {levels.low // MB} MB: staff have been told; photos stop "
            f"below {levels.no_photo // MB} MB",
            drain,
        )
    else:
        row = passed("disk", detail)
    return [row, *_check_data_partition(data, st)]


def _headroom(ctx: Context, free: int, levels: Levels) -> str:
    """ "about N days until photos stop at the recent rate (...)", or why there is no figure."""
    try:
        outbox = open_outbox_readonly(ctx)
        if outbox is None:
            return "no check-ins yet to estimate the days left from"
        with outbox:
            usage = outbox.usage()
    except StorageError:
        return "no estimate of the days left (the outbox cannot be read: see its row)"
    room = headroom(free, levels, usage)
    until = "until photos stop" if room.until == "photos_stop" else "until check-ins stop"
    if room.days is None:
        return f"no check-ins in the last {usage.days:.0f} days to estimate the days left from"
    days = "more than 999 days" if room.days > 999 else f"about {room.days:.0f} days"
    per_day = usage.bytes_per_day(photos=room.until == "photos_stop") / MB
    return (
        f"{days} {until} at the recent rate ({usage.checkins_per_day:.0f} check-ins and "
        f"{per_day:.1f} MB a day over {usage.days:.0f} days)"
    )


def _check_data_partition(data: Path, st: os.statvfs_result) -> list[Check]:
    """Does the data partition fill the card, and its file system the partition? Both grow on
    the first boot (kiosk-grow-data.service, then x-systemd.growfs); this says if they did."""
    fill = growdata.partition_fill(data, growdata.SYSFS)
    if fill is None:
        return []  # not on a disk partition: nothing to grow
    part_mb = fill.partition // MB
    if fill.unused_after >= growdata.SLACK_BYTES:
        return [
            warned(
                "data partition",
                f"{part_mb} MB, with {fill.unused_after // MB} MB of the card unused after it",
                "reboot: kiosk-grow-data.service grows it before /data is mounted; if it "
                "stays, see `journalctl -b -u kiosk-grow-data`",
            )
        ]
    fs_mb = st.f_blocks * st.f_frsize // MB
    if fs_mb < part_mb * 0.9:
        return [
            warned(
                "data partition",
                f"its file system is {fs_mb} MB of the partition's {part_mb} MB",
                "reboot: x-systemd.growfs grows it when /data is mounted; if it stays, see "
                "`journalctl -b -u systemd-growfs@data.service`",
            )
        ]
    return [passed("data partition", f"{part_mb} MB, fills the card")]


def open_outbox_readonly(ctx: Context) -> Outbox | None:
    """The outbox without a signing key, or None when it was never created.

    Raises DataAccessError (this user may not use it, or it is read-only), OutboxCorrupt
    (integrity check failed) or StorageError."""
    cfg = ctx.cfg.device
    problem = access.outbox_problem(cfg.data_dir, Outbox.FILE)
    if problem is not None:  # before looking for the file: it may be out of sight
        raise problem.error()
    if not (cfg.data_dir / Outbox.FILE).exists():
        return None
    return access.open_outbox(Outbox(cfg.data_dir, device=cfg.id, key=None, clock=ctx.clock))


def check_outbox(ctx: Context) -> list[Check]:
    """Integrity, queue depth, oldest unsent record, parked records."""
    try:
        outbox = open_outbox_readonly(ctx)
    except OutboxCorrupt as exc:
        return [
            failed(
                "outbox integrity",
                f"the outbox database failed its integrity check ({exc.reason})",
                "restart kiosk.service: it sets the damaged file aside and salvages every "
                "record that still verifies; keep the set-aside file for the central team",
            )
        ]
    except access.DataAccessError as exc:
        return [failed("outbox integrity", f"the outbox cannot be opened: {exc.detail}", exc.fix)]
    except StorageError as exc:
        return [
            failed(
                "outbox integrity",
                f"the outbox cannot be opened: {exc.message}",
                "look for disk errors (`journalctl -k -b`) and free space (the disk row); "
                "then restart kiosk.service",
            )
        ]
    aside = _set_aside(ctx)
    if outbox is None:
        hint = read_anchor_hint(ctx.cfg.device.data_dir)
        if hint is not None:
            return [_lost_chain(hint[0])]
        return [warned("outbox", "no outbox yet (no records made)", "start kiosk.service")]
    with outbox:
        stats = outbox.stats()
        file_schema, own_schema = outbox.schema
        lost_after = outbox.lost_records()
    detail = f"quick_check ok; chain head at seq {stats.last_seq}"
    if lost_after is not None:
        rows = [_lost_chain(lost_after)]
    elif file_schema > own_schema:
        rows = [
            warned(
                "outbox integrity",
                f"{detail}; schema {file_schema}, made by newer software (this is "
                f"{own_schema}), which declared it usable by this version",
                "an update was rolled back: check-ins continue; install a fixed update "
                "(docs/updates.md)",
            )
        ]
    else:
        rows = [passed("outbox integrity", detail)]
    depth = f"{stats.depth} records waiting"
    oldest = stats.oldest_unsent_s
    if oldest is None:
        rows.append(passed("outbox queue", "nothing waiting: every record is acknowledged"))
    elif oldest > OLDEST_FAIL_S:
        rows.append(
            failed(
                "outbox queue",
                f"{depth}; the oldest for {_age(oldest)}",
                "the kiosk has not reached the API for weeks: fix the network (see the api "
                "rows), then `kioskctl sync`",
            )
        )
    elif oldest > OLDEST_WARN_S:
        rows.append(
            warned(
                "outbox queue",
                f"{depth}; the oldest for {_age(oldest)}",
                "check the network and the api rows; `kioskctl sync` sends the queue now",
            )
        )
    else:
        rows.append(passed("outbox queue", f"{depth}; the oldest for {_age(oldest)}"))
    if stats.parked:
        rows.append(
            warned(
                "outbox parked",
                f"{stats.parked} records were rejected by the API and are kept aside",
                "list them with `kioskctl outbox list --parked` and send "
                "`kioskctl outbox export --operator ID --purpose incident` to the central team; "
                "when they say the API's fault is fixed, `kioskctl outbox send-again --reason "
                "<reason>` sends those again",
            )
        )
    else:
        rows.append(passed("outbox parked", "no rejected records"))
    return rows if aside is None else [*rows, aside]


def _lost_chain(seq: int) -> Check:
    """The failed row for an outbox that is missing, or holds no records, where the chain had
    reached ``seq`` (chain-anchor.json): records were lost and the loss is not yet recorded."""
    return failed(
        "outbox integrity",
        f"the outbox holds no records, but this kiosk's chain had reached seq {seq} "
        "(chain-anchor.json): the outbox file was deleted, emptied or replaced",
        f"start kiosk.service: it continues the chain after seq {seq} and sends a fault "
        "record saying so. Records made on this kiosk after that seq and not yet sent are "
        "lost: tell the central team, whose API shows the gap",
    )


def _set_aside(ctx: Context) -> Check | None:
    """A warning while damaged outboxes that kiosk.service set aside are on the card."""
    folder = ctx.cfg.device.data_dir / "corrupt"
    try:
        stamps = sorted(p.name for p in folder.iterdir() if p.is_dir())
    except OSError:
        return None
    if not stamps:
        return None
    return warned(
        "outbox set aside",
        f"{len(stamps)} damaged outbox(es) set aside, the newest {stamps[-1]}; the kiosk "
        "salvaged what verified and carried on with a new one",
        f"keep {folder} for the central team (it may hold records that never reached them); "
        "remove it only when they have confirmed nothing is missing",
    )


# --- roster ----------------------------------------------------------------------------------
ROSTER_FIX = (
    "ask the service desk to correct that roster entry and publish the roster again; "
    "kiosk-sync fetches the corrected one by itself"
)


def check_roster(ctx: Context) -> list[Check]:
    """The roster kiosk-sync stored (the kiosk's own parser reads it), and what kiosk-sync
    says in ``roster-status.json``: the API's latest roster refused, or people left out."""
    data = ctx.cfg.device.data_dir
    try:
        status = json.loads((data / ROSTER_STATUS).read_bytes())
    except (OSError, ValueError):
        status = {}
    refused = status.get("refused") if isinstance(status, dict) else None
    why = ""  # the API's latest roster refused: since when, and the field
    if isinstance(refused, dict):
        where = f" at {refused.get('field')}" if refused.get("field") else ""
        why = (
            f"the API's latest roster was refused since {refused.get('at')} "
            f"({refused.get('reason')}{where}: {refused.get('what')})"
        )
    try:
        raw = (data / "roster.json").read_bytes()
    except FileNotFoundError:
        return [
            warned(
                "roster",
                "no roster yet: nobody can identify at the kiosk (staff can still record "
                "attendance)" + (f"; {why}" if why else ""),
                ROSTER_FIX
                if why
                else "start kiosk-sync.service and check the api rows; ask the service desk "
                "to publish this kiosk's roster",
            )
        ]
    except OSError as exc:
        return [failed("roster", f"the roster file cannot be read ({exc.strerror})", ROSTER_FIX)]
    try:
        roster = parse_roster(json.loads(raw), drop_bad_people=True)
    except (ValueError, RosterInvalid) as exc:
        what = f"{exc.field} {exc.what}" if isinstance(exc, RosterInvalid) else "not JSON"
        return [
            failed(
                "roster",
                f"the roster file is not usable ({what}): nobody can identify at the kiosk",
                "kiosk-sync fetches the API's roster again by itself (`kioskctl sync` does not); "
                "if this stays, " + ROSTER_FIX,
            )
        ]
    detail = f"{len(roster)} people, made {roster.generated_at}"
    rows = []
    if why:
        rows.append(
            warned(
                "roster", f"{why}; the kiosk keeps using its previous one ({detail})", ROSTER_FIX
            )
        )
    if roster.dropped:
        listed = "; ".join(str(d) for d in roster.dropped[:3])
        more = f" and {len(roster.dropped) - 3} more" if len(roster.dropped) > 3 else ""
        rows.append(
            warned(
                "roster entries",
                f"{len(roster.dropped)} people left out of the roster, their entries not valid "
                f"({listed}{more}): they check in at reception",
                ROSTER_FIX,
            )
        )
    if not rows:
        rows.append(passed("roster", detail))
    return rows


# --- device key ------------------------------------------------------------------------------
def load_key(ctx: Context) -> SigningKey:
    return key_backend(ctx.cfg.device, ctx.cfg.hardware_key).load()


def _check_token_key(ctx: Context) -> tuple[list[Check], SigningKey | None]:
    """The key on the hardware token is there and signs (a throw-away message, verified with
    its public key: proves the token, its PIN and its library work end to end)."""
    backend = key_backend(ctx.cfg.device, ctx.cfg.hardware_key)
    try:
        key = backend.load()
    except DeviceKeyError as exc:
        return [failed("key", exc.message, "see docs/keys.md; then `kioskctl doctor` again")], None
    rows = [passed("key", f"on the hardware key ({backend.describe()})")]
    probe = b"kioskctl doctor: does the hardware key sign?"
    try:
        ok = verify_signature(key.public_key(), key.alg, probe, key.sign(probe))
    except DeviceKeyError as exc:
        rows.append(failed("key signs", exc.message, "re-seat the token; see docs/keys.md"))
        return rows, None
    if not ok:
        rows.append(
            failed(
                "key signs",
                "the token's signature does not verify with its own public key",
                "the token is faulty or holds a mismatched pair: re-provision with --force",
            )
        )
        return rows, None
    rows.append(passed("key signs", "a test signature verifies with its public key"))
    return rows, key


def check_key(ctx: Context) -> list[Check]:
    """The key exists (a 0600 file, or on the hardware token, signing), and is the key the
    device enrolled."""
    if ctx.cfg.hardware_key is not None:
        rows, token_key = _check_token_key(ctx)
        if token_key is None:
            return rows
        return rows + _check_enrolled_key(ctx, token_key)
    path = ctx.cfg.device.key_path
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return [
            failed(
                "key",
                f"no device key at {path}",
                "provision the device: `kioskctl provision --code <enrolment code>`",
            )
        ]
    except PermissionError:
        return [failed("key", access.denied(path), access.AS_KIOSK)]
    rows = [passed("key", f"present at {path}")]
    if mode & 0o077:
        rows.append(
            failed(
                "key permissions",
                f"mode {mode:04o}: other users can read the device key",
                f"chmod 600 {path}; if it may have been copied, rotate it with "
                "`kioskctl provision --force`",
            )
        )
        return rows
    rows.append(passed("key permissions", "0600"))
    try:
        key = load_key(ctx)
    except DeviceKeyError as exc:
        if exc.reason == "key_access":  # present, but not for this user to read
            return [failed("key", access.denied(path), access.AS_KIOSK), rows[1]]
        rows.append(failed("key enrolment", exc.message, "re-provision with --force"))
        return rows
    return rows + _check_enrolled_key(ctx, key)


def _check_enrolled_key(ctx: Context, key: SigningKey) -> list[Check]:
    rows: list[Check] = []
    try:
        enrolment = load_enrolment(ctx.cfg.device.data_dir)
    except DeviceKeyError as exc:
        if exc.reason == "key_access":
            where = enrolment_path(ctx.cfg.device.data_dir)
            return [failed("key enrolment", access.denied(where), access.AS_KIOSK)]
        return [failed("key enrolment", exc.message, "re-provision with --force")]
    if enrolment is None:
        rows.append(
            failed(
                "key enrolment",
                "this device has no enrolment record (enrolment.json)",
                "provision it: `kioskctl provision --code <enrolment code>`",
            )
        )
    elif enrolment.public_key_pem.strip() != public_pem(key.public_key()).strip():
        rows.append(
            failed(
                "key enrolment",
                "the device key is not the key this device enrolled",
                "restore the enrolled key from backup, or rotate deliberately with "
                "`kioskctl provision --force --code <new code>`",
            )
        )
    else:
        rows.append(passed("key enrolment", f"matches the key enrolled as {enrolment.device}"))
    return rows


# --- API -------------------------------------------------------------------------------------
def _peer_certificate(host: str, port: int, timeout: float) -> x509.Certificate | None:
    """The server's certificate fetched WITHOUT verification, only to explain a failure."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _tls(ctx: Context, host: str, port: int) -> Check:
    api = ctx.cfg.api
    now = dt.datetime.fromtimestamp(ctx.clock.wall(), dt.UTC)
    try:
        with (
            socket.create_connection((host, port), timeout=ctx.net_timeout_s) as sock,
            tls_context(api.ca_bundle).wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        cert = _peer_certificate(host, port, ctx.net_timeout_s)
        if cert is not None and cert.not_valid_after_utc < now:
            return failed(
                "api tls",
                f"the API's certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                "the central team must renew the API's certificate; check the kiosk's clock "
                f"too (it reads {now:%Y-%m-%d %H:%M} UTC)",
            )
        if cert is not None and cert.not_valid_before_utc > now:
            return failed(
                "api tls",
                f"the API's certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d}",
                "the kiosk's clock is probably wrong: check `timedatectl status` and NTP",
            )
        return failed(
            "api tls",
            f"the API's certificate is not trusted ({exc.verify_message})",
            f"the CA bundle {api.ca_bundle or '(system)'} does not sign it: re-run "
            "`kioskctl provision` or install the API's CA bundle",
        )
    except (OSError, ssl.SSLError) as exc:
        return failed(
            "api tls",
            f"cannot connect to {host}:{port} ({exc.__class__.__name__})",
            "check the network cable or Wi-Fi, the firewall (HTTPS out), and api.url",
        )
    cert = x509.load_der_x509_certificate(der) if der else None
    if cert is None:
        return failed("api tls", "the API sent no certificate", "check api.url")
    left = cert.not_valid_after_utc - now
    detail = (
        f"verified; certificate valid until {cert.not_valid_after_utc:%Y-%m-%d} ({left.days} days)"
    )
    if left.days < CERT_WARN_DAYS:
        return warned("api tls", detail, "ask the central team to renew the API certificate")
    return passed("api tls", detail)


def _skew(ctx: Context, response: httpx.Response) -> Check:
    header = response.headers.get("Date")
    if not header:
        return warned("clock skew", "the API sent no Date header", "compare the clocks by hand")
    try:
        server = email.utils.parsedate_to_datetime(header).timestamp()
    except (ValueError, TypeError):
        return warned(
            "clock skew",
            "the API sent a Date header that is not a date",
            "compare the clocks by hand",
        )
    skew = ctx.clock.wall() - server
    way = "ahead of" if skew > 0 else "behind"
    detail = f"the kiosk's clock is {abs(skew):.0f} s {way} the API's"
    if abs(skew) > MAX_SKEW_S:
        return failed(
            "clock skew",
            f"{detail}; the API refuses requests more than {MAX_SKEW_S} s out",
            "fix time sync: `timedatectl status`, NTP (UDP 123) reachable; a Pi 4 has no "
            "RTC and keeps the wrong time until NTP answers",
        )
    if abs(skew) > WARN_SKEW_S:
        return warned("clock skew", detail, "check NTP (`timedatectl status`)")
    return passed("clock skew", detail)


#: how long after a rotation a refused key is explained as "rotation pending" (a warning)
#: rather than failed; `kioskctl sync` marks the rotation complete as soon as the API has it
ROTATION_GRACE_S = 7 * 24 * 3600


#: what to do when the API's answer is unusable (garbage, endless, slower than the deadline)
LYING_API_FIX = (
    "check that api.url is the central API (not a proxy or login page) and retry later; if it "
    "persists, tell the central team"
)


def _enrolled(ctx: Context, http: apiclient.Http) -> Check:
    try:
        key = load_key(ctx)
    except DeviceKeyError:
        return failed("api enrolment", "no usable device key to sign with", "see the key rows")
    device = ctx.cfg.device.id
    try:
        response = apiclient.signed_get(
            http, ctx.cfg.api, key, device, f"/v1/devices/{device}/roster", ctx.clock.wall(),
            cut_short=True,
        )  # fmt: skip
    except (apiclient.SlowAnswer, apiclient.BadAnswer) as exc:
        return failed("api enrolment", f"the API {exc.what}", LYING_API_FIX)
    except httpx.HTTPError as exc:
        return failed("api enrolment", f"no answer ({exc.__class__.__name__})", "retry later")
    if response.status_code in (200, 304, 404):
        return passed("api enrolment", f"the API accepts {device}'s signed requests")
    try:
        reason = str(apiclient.json_object(response).get("error", ""))[:60]
    except apiclient.BadAnswer:
        reason = ""
    if reason == "unknown_device":
        return failed(
            "api enrolment",
            f"the API does not know {device}",
            "provision the device: `kioskctl provision --code <enrolment code>`",
        )
    if reason == "clock_skew":
        return failed(
            "api enrolment",
            "the API refused the request: the kiosk's clock is too far out",
            "fix time sync (see the clock skew row)",
        )
    with contextlib.suppress(DeviceKeyError):
        enrolment = load_enrolment(ctx.cfg.device.data_dir)
        recent = (
            enrolment is not None and ctx.clock.wall() - enrolment.enrolled_at < ROTATION_GRACE_S
        )
        if enrolment is not None and not enrolment.api_confirmed and recent:
            return warned(
                "api enrolment",
                "the API does not accept the new key yet: it switches keys when it accepts "
                "this kiosk's key_rotation record",
                "run `kioskctl sync` (or start kiosk-sync.service); do not rotate again",
            )
    return failed(
        "api enrolment",
        f"the API refused this device's signature ({response.status_code} {reason})",
        "the API holds another key for this device: re-provision with `kioskctl provision "
        "--force --code <new code>` or ask the central team",
    )


def check_api(ctx: Context) -> list[Check]:
    """The TLS files, DNS, TLS with certificate expiry, clock skew from the Date header,
    enrolment."""
    try:
        check_api_files(ctx.cfg.api)
    except ConfigError as exc:
        return [
            failed(
                "api tls",
                exc.message,
                "do as it says, check with `kiosk check-config`, then `sudo systemctl restart "
                "kiosk-sync` (it stops with status 78 until the file is right; check-ins are "
                "kept on the kiosk meanwhile)",
            )
        ]
    parts = urlsplit(ctx.cfg.api.url)
    host = parts.hostname or ""
    port = parts.port or 443
    try:
        ipaddress.ip_address(host)
        rows = [passed("api dns", f"{host} is an address; no lookup needed")]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return [
                failed(
                    "api dns",
                    f"{host} cannot be resolved",
                    "check the network and DNS (`resolvectl status`), and the host in api.url",
                )
            ]
        rows = [passed("api dns", f"{host} -> {infos[0][4][0]}")]
    tls = _tls(ctx, host, port)
    rows.append(tls)
    if tls.status == "fail":
        return rows
    try:
        with apiclient.client(ctx.cfg.api, ctx.net_timeout_s) as http:
            response = apiclient.request(http, "GET", "/v1/health")
            rows.append(_skew(ctx, response))
            rows.append(_enrolled(ctx, http))
    except (apiclient.SlowAnswer, apiclient.BadAnswer) as exc:
        rows.append(failed("api", f"the API {exc.what}", LYING_API_FIX))
    except httpx.HTTPError as exc:
        rows.append(
            failed("api", f"the API did not answer ({exc.__class__.__name__})", "retry later")
        )
    return rows


# --- systemd ---------------------------------------------------------------------------------
def check_units(ctx: Context) -> list[Check]:
    """Each kiosk unit is active; restarts and the last result are shown."""
    rows: list[Check] = []
    for unit in UNITS:
        got = ctx.parts.run(
            [
                "systemctl",
                "show",
                unit,
                "--property=LoadState,ActiveState,SubState,Result,NRestarts,ExecMainStatus",
            ],
            ctx.net_timeout_s,
        )
        # None: no systemctl; no ActiveState: systemctl cannot reach systemd (not PID 1)
        if got is None or "ActiveState=" not in got[1]:
            return [
                warned(
                    "systemd",
                    "systemctl is not available here (not a kiosk image, or a container)",
                    "run kioskctl on the kiosk itself",
                )
            ]
        props = dict(line.split("=", 1) for line in got[1].splitlines() if "=" in line)
        name = unit.removesuffix(".service")
        state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
        restarts = int(props.get("NRestarts", "0") or 0)
        last = props.get("Result", "?")
        logs = f"see `journalctl -u {unit} -b -n 50`"
        if props.get("LoadState") == "not-found":
            rows.append(failed(name, "unit not installed", "reinstall the kiosk image or units"))
        elif props.get("ActiveState") != "active":
            rows.append(
                failed(
                    name,
                    f"{state}; last result {last}, exit status {props.get('ExecMainStatus', '?')}",
                    f"`sudo systemctl restart {unit}`; {logs}",
                )
            )
        elif restarts:
            rows.append(
                warned(name, f"{state}; restarted {restarts} times, last result {last}", logs)
            )
        else:
            rows.append(passed(name, f"{state}; no restarts"))
    return rows
