"""faults.*: the SIGKILL and network-fault campaigns (tests/faults/), run as in the test
command, their counts carried as figures. Targets: lost = duplicated = 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hil.bench import Figure

ROOT = Path(__file__).resolve().parents[2]


def figures() -> dict[str, Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        env = dict(os.environ, KIOSK_FAULTS_REPORT=str(report))
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "not soak", "-p", "no:cacheprovider",
             "tests/faults/test_api_faults.py"],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        runs = {r["campaign"]: r for r in map(json.loads, report.read_text().splitlines())}
    kill, net = runs["kill"], runs["net"]
    zero = "= 0"
    return {
        "faults.kill_episodes": {"value": kill["episodes"], "unit": "episodes", "target": ">= 200"},
        "faults.kill_confirmed": {"value": kill["confirmed"], "unit": "check-ins"},
        "faults.kill_lost": {"value": kill["lost"], "unit": "check-ins", "target": zero},
        "faults.kill_duplicated": {"value": kill["duplicated"], "unit": "records", "target": zero},
        "faults.net_records": {"value": net["confirmed"], "unit": "records"},
        "faults.net_lost": {"value": net["lost"], "unit": "records", "target": zero},
        "faults.net_duplicated": {"value": net["duplicated"], "unit": "records", "target": zero},
    }
