"""CPU time of processes, read from /proc (Linux): a cost per request or per turn that, unlike
requests/s, does not swing much with whatever else runs on the machine.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_by_role(roles: Sequence[tuple[str, str]], depth: int = 3) -> dict[str, float]:
    """CPU seconds so far of this process (``bench driver``) and its descendants down to
    ``depth`` generations, summed by role: a process belongs to the first ``(needle, role)`` whose
    needle is in its command line; descendants matching none are left out."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"bench driver": usage.ru_utime + usage.ru_stime}
    procs: list[tuple[int, int, str, float]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        procs.append((int(entry.name), int(fields[1]), cmd, cpu))
    mine = {os.getpid()}
    for _ in range(depth):
        mine |= {pid for pid, ppid, _, _ in procs if ppid in mine}
    for pid, _, cmd, cpu in procs:
        if pid in mine and pid != os.getpid():
            role = next((name for needle, name in roles if needle in cmd), None)
            if role:
                out[role] = out.get(role, 0.0) + cpu
    return out


def per_unit_ms(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work (turn, request) by role between two readings."""
    return {role: (after[role] - before.get(role, 0.0)) * 1000 / units for role in after}
