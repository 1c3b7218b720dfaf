"""What every doctor check is given: the configuration, the parts, a clock.

May import: the standard library, ``daemon.*``, ``daemon.kioskctl.parts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from daemon.clock import Clock, SystemClock
from daemon.config import Config
from daemon.kioskctl.parts import Parts


@dataclass
class Context:
    cfg: Config
    parts: Parts = field(default_factory=Parts)
    clock: Clock = field(default_factory=SystemClock)
    #: seconds for each network step (DNS, connect, TLS, HTTP)
    net_timeout_s: float = 5.0
    #: where sysfs is (tests give a fake tree)
    sysfs: Path = Path("/sys")
