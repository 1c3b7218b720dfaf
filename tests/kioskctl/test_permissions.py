"""kioskctl run as the wrong user, or on a read-only data directory: the problem is named
with what to do, never a traceback, "the check itself crashed", or "the record store is
damaged"."""

from __future__ import annotations

import io
import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.kioskctl.access import AS_KIOSK
from tests.kioskctl.conftest import Kiosk

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]


#: where the checkout is shown to uid 65534 (in a mount namespace of its own, for one
#: command): a clone in a private folder (``mktemp -d`` makes it 0700) is out of that user's
#: reach, and so would kioskctl be. A tmpfs (0755) there, with each of the checkout's
#: top-level folders bind-mounted into it, lets it in without changing anything on disk.
SRC = Path(tempfile.gettempdir()) / f"kiosk-perm-src-{os.getuid()}"
_MOUNT = (
    'mount -t tmpfs -o mode=0755 kiosk-src "$1" || exit 1; '
    'for e in "$0"/* "$0"/.venv; do [ -d "$e" ] || continue; '
    'mkdir "$1/${e##*/}" && mount --bind "$e" "$1/${e##*/}" || exit 1; done; '
    'shift; exec "$@"'
)


def _as_nobody(argv: list[str]) -> list[str]:
    """``argv`` run as uid 65534 with this checkout mounted at :data:`SRC`."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT, str(ROOT),
            str(SRC), "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            *argv]  # fmt: skip


def _nobody_env(python: str) -> dict[str, str]:
    """The checkout (at SRC) and, for the system's interpreter, the venv's packages."""
    paths = [str(SRC)]
    if not python.startswith(str(SRC)):
        venv = Path(sys.prefix)
        paths += [str(SRC / Path(p).relative_to(ROOT)) if venv.is_relative_to(ROOT) else p
                  for p in site.getsitepackages()]  # fmt: skip
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _interpreter_for_nobody() -> tuple[str | None, str]:
    """A Python of this version that uid 65534 can run kioskctl with: this environment's,
    seen through SRC, or the system's with the environment's packages. (path, "") or
    (None, why not)."""
    if os.geteuid() != 0:
        return None, "needs root, to run kioskctl as another user"
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        return None, "needs setpriv and unshare (util-linux)"
    SRC.mkdir(mode=0o755, exist_ok=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    ours = Path(sys.executable)
    if ours.is_relative_to(ROOT):
        ours = SRC / ours.relative_to(ROOT)
    for python in dict.fromkeys([str(ours), f"/usr/bin/{version}"]):
        probe = subprocess.run(
            _as_nobody([python, "-c", "import daemon.kioskctl.__main__"]),
            cwd="/", capture_output=True, check=False, env=_nobody_env(python),
        )  # fmt: skip
        if probe.returncode == 0:
            return python, ""
    return None, f"uid 65534 can run no {version} that imports kioskctl from this checkout"


@pytest.fixture
def shared(kiosk: Kiosk) -> Iterator[Path]:
    """The kiosk copied where uid 65534 can reach its configuration, owned by root as on a
    device: the configuration readable, the keys 0600, the data directory 0755."""
    folder = Path(tempfile.mkdtemp(prefix="kiosk-perm-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        data = kiosk.cfg.device.data_dir
        shutil.copytree(data, folder / "data")
        (folder / "data").chmod(0o755)
        text = kiosk.config.read_text().replace(str(data), str(folder / "data"))
        ca = kiosk.cfg.api.ca_bundle
        assert ca is not None
        shutil.copy(ca, folder / "api-ca.pem")
        text = text.replace(str(ca), str(folder / "api-ca.pem"))
        (folder / "kiosk.toml").write_text(text)
        (folder / "kiosk.toml").chmod(0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


def as_nobody(folder: Path, *argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        _as_nobody([str(PYTHON), "-m", "daemon.kioskctl",
                    "--config", str(folder / "kiosk.toml"), *argv]),
        cwd=folder, capture_output=True, text=True, timeout=60, check=False,
        env=_nobody_env(str(PYTHON)),
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


PYTHON, NOT_HERE = _interpreter_for_nobody()


@pytest.mark.skipif(PYTHON is None, reason=NOT_HERE)
def test_the_wrong_user_is_told_to_use_root_or_the_kiosk_user(shared: Path) -> None:
    code, out, err = as_nobody(shared, "doctor", "--no-hardware", "--json")
    assert code == 1 and "Traceback" not in err, err
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    assert rows["key"]["status"] == "fail"
    assert rows["key"]["detail"].startswith("permission denied reading")
    assert rows["key"]["fix"] == AS_KIOSK
    assert "permission denied" in rows["outbox integrity"]["detail"]
    assert rows["outbox integrity"]["fix"] == AS_KIOSK
    assert "crashed" not in out and "kioskctl bug" not in out

    code, out, err = as_nobody(shared, "status")
    assert code == 1 and "run it as root" in out and "damaged" not in out, out + err

    code, out, err = as_nobody(shared, "sync")
    assert code == 1 and "Traceback" not in err
    assert "permission denied reading the device key" in err and "kiosk user" in err

    code, out, err = as_nobody(shared, "outbox", "list")
    assert code == 1 and "permission denied" in err and "kiosk user" in err
    assert "readonly database" not in err

    bundle = shared / "out" / "b.tar.gz"
    (shared / "out").mkdir(mode=0o777)
    (shared / "out").chmod(0o777)
    code, out, err = as_nobody(shared, "bundle", "--out", str(bundle))
    assert code == 1 and "Traceback" not in err, err
    assert "the bundle is incomplete" in err and "sudo kioskctl bundle" in err
    with tarfile.open(bundle) as tar:
        [name] = [n for n in tar.getnames() if n.endswith("manifest.json")]
        manifest = json.load(tar.extractfile(name))  # type: ignore[arg-type]
    assert any("outbox" in o and "permission denied" in o for o in manifest["omitted"])


@pytest.mark.skipif(PYTHON is None, reason=NOT_HERE)
def test_an_unreadable_configuration_says_whom_to_run_as(shared: Path) -> None:
    (shared / "kiosk.toml").chmod(0o600)
    code, _out, err = as_nobody(shared, "status")
    assert code == 78 and "permission denied reading the configuration file" in err
    assert "kiosk user" in err and "Traceback" not in err


def test_a_read_only_data_directory_is_named_with_the_fix(kiosk: Kiosk) -> None:
    data = kiosk.cfg.device.data_dir
    data.chmod(0o555)
    try:
        code, out, _err = kiosk.run("doctor", "--no-hardware", "--json")
        rows = {c["name"]: c for c in json.loads(out)["checks"]}
        code_s, status, _ = kiosk.run("status")
    finally:
        data.chmod(0o750)
    assert code == 1
    assert rows["disk"]["status"] == "fail"
    assert f"the data directory {data} is read-only (mode 0555)" in rows["disk"]["detail"]
    assert f"chmod 0750 {data}" in rows["disk"]["fix"]
    assert code_s == 1 and "storage is read-only" in status


def test_a_read_only_mount_is_named_with_the_fix(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    def read_only_mount(path: str | os.PathLike[str]) -> os.statvfs_result:
        r = real(path)
        return os.statvfs_result((r.f_bsize, r.f_frsize, r.f_blocks, r.f_bfree, r.f_bavail,
                                  r.f_files, r.f_ffree, r.f_favail, r.f_flag | os.ST_RDONLY,
                                  r.f_namemax))  # fmt: skip

    monkeypatch.setattr(os, "statvfs", read_only_mount)
    _code, out, _err = kiosk.run("doctor", "--no-hardware", "--json")
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    assert rows["disk"]["status"] == "fail"
    assert "mounted read-only" in rows["disk"]["detail"]
    assert "journalctl -k -b" in rows["disk"]["fix"]


def test_a_bundle_that_could_not_include_something_says_so_and_exits_1(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    target = tmp_path / "b.tar.gz"
    code, out, err = kiosk.run("bundle", "--out", str(target),
                               "--log-file", str(tmp_path / "missing.log"))  # fmt: skip
    assert code == 1 and "bundle written" in out
    assert "the bundle is incomplete" in err and "missing.log" in err
    with tarfile.open(target) as tar:
        [name] = [n for n in tar.getnames() if n.endswith("manifest.json")]
        manifest = json.load(io.TextIOWrapper(tar.extractfile(name)))  # type: ignore[arg-type]
    assert [o for o in manifest["omitted"] if "missing.log" in o]
    code, _out, err = kiosk.run("bundle", "--out", str(target))
    assert code == 0 and "incomplete" not in err
