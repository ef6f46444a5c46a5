"""How many ingress processes share the vendor-facing port (RESULTBUS_INGRESS_PROCESSES).

One Python process answers on one core; the ingress's work per request is close to a bare aiohttp
handler's (docs/performance.md, issue 23), so more cores need more processes. `auto` (the default)
runs one per CPU this process may use: the CPUs of its affinity mask, bounded by its cgroup's CPU
quota where there is one (a container limited to 2 CPUs on a 64-core node runs 2, not 64).
"""

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from common.env import Setting

AUTO: Final = 0  # the setting's value for `auto`: resolved by usable_cpus() at start-up
MOST: Final = 256

# cgroup v2 (`max 100000` or `200000 100000`), then v1's two files.
_CPU_MAX: Final = Path("/sys/fs/cgroup/cpu.max")
_CFS_QUOTA: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CFS_PERIOD: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def parse_processes(raw: str) -> int:
    value = raw.strip().lower()
    if value in ("auto", ""):  # empty as unset: a compose file's `${VAR:-}`
        return AUTO
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"expected auto or a number of processes, got {raw!r}") from None
    if not 1 <= count <= MOST:
        raise ValueError(f"expected auto or 1 to {MOST} processes, got {raw!r}")
    return count


PROCESSES = Setting(
    "RESULTBUS_INGRESS_PROCESSES",
    AUTO,
    parse_processes,
    shown="auto",
    help="processes sharing the port (SO_REUSEPORT); auto: one per usable CPU",
)


def quota_cpus(cpu_max: str) -> float | None:
    """The CPUs a cgroup v2 `cpu.max` line allows (`200000 100000`: 2.0), None when unlimited."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cpus(affinity: int, quota: float | None) -> int:
    """One process per CPU the scheduler lets this process use, at most the quota rounded up."""
    count = max(1, affinity)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return min(count, MOST)


def resolve(setting: int, read: Callable[[Path], str] = Path.read_text) -> int:
    """The number of processes to run for the setting's value (`auto` resolved here)."""
    if setting != AUTO:
        return setting
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return usable_cpus(affinity, _quota(read))


def _quota(read: Callable[[Path], str]) -> float | None:
    try:
        return quota_cpus(read(_CPU_MAX))
    except OSError:
        pass
    try:
        return quota_cpus(f"{read(_CFS_QUOTA).strip()} {read(_CFS_PERIOD).strip()}".replace("-1 ", "max "))
    except OSError:
        return None
