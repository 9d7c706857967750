"""What the kernel says about a process: memory (``/proc/<pid>/status``) and CPU time.

Memory is read per process and summed over the processes a receiver consists
of (ExaBGP plus its API process). ``VmHWM`` is the kernel's own high-water
mark of the resident set, so a peak is never missed between two polls.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int:
    """One ``kB`` field of ``/proc/<pid>/status``; 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_bytes(pids: Iterable[int]) -> int:
    """Current resident set size (``VmRSS``), summed."""
    return sum(_status_kib(pid, "VmRSS") for pid in pids) * 1024


def peak_rss_bytes(pids: Iterable[int]) -> int:
    """Peak resident set size (``VmHWM``), summed over the processes."""
    return sum(_status_kib(pid, "VmHWM") for pid in pids) * 1024


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from ``/proc/<pid>/task/*/children``)."""
    found = [pid]
    for tid_dir in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (tid_dir / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += descendants(int(child))
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time consumed so far, summed (``/proc/<pid>/stat`` fields 14-15)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def wait_quiet(*, busy: float = 0.1, window: float = 0.5, timeout: float = 30.0) -> float:
    """Wait until the whole machine uses less than ``busy`` of a core over ``window`` seconds.

    Used before each measurement, so that neither work left over from the
    previous one (FRR freeing a peer's Adj-RIB-Out, say) nor someone else's
    job is charged to the next. Gives up after ``timeout`` (the measurement's
    ``other CPU`` then shows the disturbance); returns the seconds waited.
    """
    start = time.monotonic()
    before = system_busy_seconds()
    while time.monotonic() - start < timeout:
        time.sleep(window)
        after = system_busy_seconds()
        if after - before < busy * window:
            break
        before = after
    return time.monotonic() - start


def system_busy_seconds() -> float:
    """CPU time all processes together spent in user and kernel mode (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system = (int(v) for v in fields[1:4])
    return (user + nice + system) / CLOCK_TICKS


class OtherLoad:
    """How busy the machine was with processes outside a measurement, in cores.

    The benchmark shares its machine; a test suite started by someone else in
    the middle of a measurement shows up here instead of silently in the
    numbers. ``ours`` are the measured processes plus this one.
    """

    def __init__(self, ours: Iterable[int]):
        self.ours = [os.getpid(), *ours]
        self.began = time.monotonic()
        self.busy = system_busy_seconds()
        self.own = cpu_seconds(self.ours)

    def cores(self) -> float:
        elapsed = time.monotonic() - self.began
        if elapsed <= 0:
            return 0.0
        other = (system_busy_seconds() - self.busy) - (cpu_seconds(self.ours) - self.own)
        return max(0.0, other / elapsed)
