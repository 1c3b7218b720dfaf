"""``make demo``: the kiosk's main job on simulated hardware and the reference API.

1. starts the reference central API on 127.0.0.1 (HTTPS, a throw-away CA) in ``.demo/api``;
2. provisions a simulated kiosk in ``.demo/kiosk`` (keys, enrolment, kiosk.toml) and
   publishes a roster of synthetic people;
3. starts ``kiosk sync`` as its own process, as on a device;
4. runs a scripted morning of check-ins through the real drivers (the emulated fingerprint
   sensor speaking its byte protocol, the synthetic camera, HPKE sealing, the outbox):
   through the real check-in flow: normal ones, one in Welsh, a finger that will not read
   and falls back to date of birth + photo, escalations, and the enclosure opened (tamper)
   then unlocked by reception;
5. stops the API for a while: records pile up on the kiosk; starts it again: the backlog
   drains; reception enrols the fingerprints of someone who had none on file, the back
   office puts them into the roster, and their finger checks them in next time;
6. prints a summary (records created, synced, verified by the API, chain intact) and leaves
   nothing running.

Run: ``python -m daemon.demo [--folder .demo] [--watch]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from daemon.config import load_config
from daemon.demo_script import run_scene
from daemon.demo_support import PEOPLE, DemoDevice, provision, publish_roster, summarise
from hil.refapi.server import RefApi

ROOT = Path(__file__).resolve().parents[1]


def _say(text: str) -> None:
    print(f"  {text}", flush=True)


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def _apply_enrolment(api: RefApi, device: DemoDevice, seq: int) -> None:
    """The back office, once kiosk-sync has delivered the enrolment record and its sealed
    templates: open them with the API's key and put them into the kiosk's roster."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    from hil.refapi.enrolment import EnrolmentNotApplied, apply_enrolment

    private = x25519.X25519PrivateKey.from_private_bytes(api.pki.seal_key.read_bytes())
    deadline = time.monotonic() + 30
    while True:
        store = api.storage()
        try:
            apply_enrolment(store, device.id, seq, private, operator="demo-officer")
            return
        except EnrolmentNotApplied:  # not synced yet
            if time.monotonic() > deadline:
                raise
        finally:
            store.close()
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.demo", description=__doc__)
    parser.add_argument("--folder", type=Path, default=ROOT / ".demo")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="serve the touchscreen UI on 127.0.0.1 and go slowly enough to watch it",
    )
    args = parser.parse_args(argv)
    folder: Path = args.folder
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="  ! %(message)s")
    started = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print("Probation check-in kiosk: demo on simulated hardware\n", flush=True)
    api = RefApi(folder / "api", simulated_expected=True)  # the demo is simulated
    sync: subprocess.Popen[bytes] | None = None
    log = (folder / "kiosk-sync.log").open("wb")
    try:
        api.start()
        _say(f"reference central API up at {api.url} (HTTPS, demo CA)")
        device = provision(api, folder / "kiosk")
        _say(f"kiosk {device.id} provisioned: keys in {device.data_dir}, enrolled with the API")
        # the last person has no fingerprints on file yet: the demo enrols them at the kiosk
        publish_roster(api, device, not_enrolled=frozenset({PEOPLE[4].ref}))
        _say(f"roster published: {len(PEOPLE)} synthetic people due today")
        sync = subprocess.Popen(
            [sys.executable, "-m", "daemon", "sync", "--config", str(device.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        _say("kiosk-sync started (its own process, as on a device)")
        roster = device.data_dir / "roster.json"
        _wait(roster.exists, 20, "the roster to reach the kiosk")
        _say("roster downloaded by the kiosk")
        cfg = load_config(device.config_path)

        def offline() -> None:
            api.stop()

        def online() -> None:
            api.start()

        def back_office(seq: int) -> None:
            _apply_enrolment(api, device, seq)

        created = asyncio.run(
            run_scene(
                cfg,
                say=_say,
                offline=offline,
                online=online,
                back_office=back_office,
                watch=args.watch,
            )
        )
        _say("waiting for the backlog to drain ...")
        store = api.storage()
        _wait(lambda: store.count(device.id) >= created, 30, "the backlog to drain")
        store.close()
        summary = summarise(api, device, created)
        print("\nSummary", flush=True)
        for line in summary.lines():
            print(f"  {line}", flush=True)
        print(
            f"\nState kept in {folder} (kiosk data, keys, API database). Export the records:\n"
            f"  .venv/bin/kiosk-refapi export --data {folder / 'api' / 'data'} "
            "--operator demo-officer --purpose audit\n"
            f"Done in {time.monotonic() - started:.1f} s.",
            flush=True,
        )
        return 0 if summary.chain_intact and summary.synced == created else 1
    finally:
        if sync is not None:
            sync.terminate()
            try:
                sync.wait(10)
            except subprocess.TimeoutExpired:
                sync.kill()
        log.close()
        api.stop()


if __name__ == "__main__":
    raise SystemExit(main())
