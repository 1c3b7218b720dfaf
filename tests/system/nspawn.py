"""Build (cached), install into and boot a Debian 12 root file system with systemd-nspawn.

Layers, each cached under ``.cache/rootfs/`` (git-ignored) and keyed by a hash of what made it:

1. ``base-<hash>``: firmware/rootfs/build-rootfs.sh (mmdebstrap, about 30 s with a mirror);
2. ``deps-<hash>``: base + /opt/kiosk venv with the dependencies, the units and the kiosk user
   (firmware/rootfs/install-kiosk.sh; keyed also by pyproject.toml and systemd/);
3. per test session: an overlayfs over ``deps`` in a temporary folder, where the current
   checkout's wheel is reinstalled (``--no-deps``) and the test's config and keys are written.
   Nothing the tests do reaches the cache.

The container shares the host's network namespace (so the sync unit reaches the reference API
on the host's 127.0.0.1) and is driven with ``nsenter`` into its PID 1, because this sandbox
has neither machined nor a system bus (hence ``--register=no --keep-unit``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "firmware" / "rootfs"
CACHE = ROOT / ".cache" / "rootfs"


class SystemTestUnavailable(Exception):
    """The host cannot run the boot tests (not root, no nspawn); the message says why."""


def host_tools() -> None:
    """Install mmdebstrap/systemd-nspawn when missing (root + apt). Raises
    SystemTestUnavailable when that is impossible here."""
    if os.geteuid() != 0:
        raise SystemTestUnavailable("the boot tests need root (mmdebstrap, systemd-nspawn)")
    script = RECIPE / "ensure-host-tools.sh"
    run = subprocess.run([str(script)], capture_output=True, text=True, timeout=900, check=False)
    if run.returncode != 0:
        raise SystemTestUnavailable(f"{script.name} failed: {run.stderr.strip()[-500:]}")


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _run(args: list[str], timeout_s: float, what: str) -> str:
    run = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed ({run.returncode}):\n{run.stdout[-2000:]}\n"
                           f"{run.stderr[-4000:]}")  # fmt: skip
    return run.stdout


def _prune(prefix: str, keep: Path) -> None:
    for old in CACHE.glob(prefix + "*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """Serialise cache builds between concurrent test sessions on one machine."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_rootfs() -> Path:
    """The cached Debian 12 tree (built on first use: about 30 s with a reachable mirror).
    Call with the cache lock held (deps_rootfs does)."""
    out = CACHE / f"base-{_digest(RECIPE / 'build-rootfs.sh')}"
    if not (out / "usr" / "bin" / "python3").exists():
        _run([str(RECIPE / "build-rootfs.sh"), str(out)], 900, "build-rootfs.sh")
        _prune("base-", out)
    return out


def wheels(dest: Path) -> Path:
    """Wheels of the checkout and its dependencies, built with this interpreter's pip."""
    dest.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(ROOT)],
         600, "pip wheel")  # fmt: skip
    return dest


def deps_rootfs(wheel_dir: Path) -> Path:
    """base + the venv with the dependencies, the units and the kiosk user (cached; builds
    are serialised with a file lock so parallel sessions do not race)."""
    with _cache_lock():
        return _deps_rootfs(wheel_dir)


def _deps_rootfs(wheel_dir: Path) -> Path:
    base = base_rootfs()
    key = _digest(RECIPE, ROOT / "pyproject.toml", ROOT / "systemd")
    out = CACHE / f"deps-{key}-{base.name}"
    if not (out / "opt" / "kiosk" / "bin" / "kiosk").exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], 300, "copy of the base")
        _run([str(RECIPE / "install-kiosk.sh"), str(tmp), str(wheel_dir)], 600, "install-kiosk")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        _prune("deps-", out)
    return out


@contextlib.contextmanager
def overlay(lower: Path, work: Path) -> Iterator[Path]:
    """A writable overlayfs view of ``lower`` in ``work``; unmounted on exit."""
    upper, scratch, merged = work / "upper", work / "work", work / "root"
    for d in (upper, scratch, merged):
        d.mkdir(parents=True)
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={lower},upperdir={upper},workdir={scratch}", str(merged)],
         30, "overlay mount")  # fmt: skip
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False, timeout=30)


class Container:
    """One booted container: ``systemd-nspawn --boot`` over ``root``.

    Thread-safety: use from one thread. ``stop()`` powers it off (SIGRTMIN+4 to its PID 1),
    then kills nspawn after ``timeout_s``; always called by the fixture. ``kill()`` ends it
    at once instead, as a reset would (no unit is stopped, nothing is flushed).

    ``machine`` names it (two containers at once need two names); ``extra`` are more
    systemd-nspawn options (``--bind=``, ``--uuid=``...).
    """

    def __init__(
        self, root: Path, log: Path, *, machine: str = "kiosk-systest", extra: Sequence[str] = ()
    ) -> None:
        self.root = root
        self.log = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
             "--console=pipe", f"--machine={machine}", *extra, "-D", str(root)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.leader = 0

    def wait_booted(self, timeout_s: float = 90.0) -> str:
        """Wait for PID 1 inside to finish start-up; returns is-system-running's answer
        (``running`` or ``degraded``). Raises RuntimeError on timeout or if nspawn exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nspawn exited {self.proc.returncode}: {self.log.read_text()}")
            if not self.leader:
                self.leader = self._find_leader()
            if self.leader:
                state = self.sh(["systemctl", "is-system-running"], check=False).strip()
                if state in ("running", "degraded"):
                    return state
            time.sleep(0.2)
        raise RuntimeError("the container did not finish booting in time")

    def _find_leader(self) -> int:
        # nspawn's child is the container's PID 1 (systemd).
        kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            for pid in kids.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        return 0

    def sh(self, args: list[str], *, check: bool = True, timeout_s: float = 30.0) -> str:
        """Run a command inside the container (all its namespaces); returns stdout."""
        run = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *args],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        if check and run.returncode != 0:
            raise RuntimeError(f"{args} exited {run.returncode}: {run.stdout}{run.stderr}")
        return run.stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(["systemctl", "show", unit, "-p", ",".join(props)])
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, timeout_s: float, **want: str) -> dict[str, str]:
        """Poll ``systemctl show`` until every property has the wanted value; returns the last
        properties read. Raises AssertionError with the unit's journal on timeout."""
        deadline = time.monotonic() + timeout_s
        props: dict[str, str] = {}
        while time.monotonic() < deadline:
            props = self.show(unit, *want)
            if all(props.get(k) == v for k, v in want.items()):
                return props
            time.sleep(0.2)
        raise AssertionError(f"{unit}: wanted {want}, have {props}\n{self.journal(unit)}")

    def wait_for_status(self, unit: str, needle: str, timeout_s: float) -> str:
        """Poll the unit's STATUS= text until it contains ``needle``; returns it."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.show(unit, "StatusText").get("StatusText", "")
            if needle in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{unit}: status {text!r} never showed {needle!r}")

    def wait_file(self, path: str, timeout_s: float) -> None:
        """Poll until ``path`` exists and is not empty inside the container."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            target = self.root / path.lstrip("/")
            if target.exists() and target.stat().st_size > 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"{path} did not appear in the container in {timeout_s} s")

    def journal(self, unit: str) -> str:
        return self.sh(["journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit],
                       check=False)  # fmt: skip

    def kill(self) -> None:
        """End the container at once: SIGKILL to its PID 1 ends every process inside."""
        for pid in (self.leader, self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                if pid and self.proc.poll() is None:
                    os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc.poll() is None and self.leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd: power off
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout_s)
        if self.proc.poll() is None:
            for pid in (self.leader, self.proc.pid):  # killing PID 1 ends its namespace
                with contextlib.suppress(ProcessLookupError):
                    if pid:
                        os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def install(root: Path, wheel_dir: Path) -> None:
    """Reinstall the checkout's wheel (only) into a tree made by deps_rootfs()."""
    for old in wheel_dir.glob("probation_kiosk-*.whl"):
        old.unlink()
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(wheel_dir), str(ROOT)], 300, "pip wheel (project)")  # fmt: skip
    _run([str(RECIPE / "install-kiosk.sh"), str(root), str(wheel_dir), "--no-deps"], 300,
         "install-kiosk --no-deps")  # fmt: skip
