"""Peak resident memory of a child process, measured so that the parent's memory does not leak in.

``ru_maxrss`` (from ``resource.getrusage`` or ``os.wait4``) is the wrong figure for a child of a
large test process: Linux carries the memory high-water mark across fork and exec, so a child of
a 1.5 GB pytest reports at least 1.5 GB however little it used itself. ``VmHWM`` in
``/proc/PID/status`` is the high-water mark of the address space the program runs in now, which
exec replaced: the child's own peak.
"""

from __future__ import annotations

import psutil


def high_water_mark(pid: int | str = "self") -> int:
    """Peak resident bytes of one process's current program (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_high_water_mark(process: psutil.Process) -> int:
    """Sum of the peaks of a process and its children (an upper bound on the tree's peak)."""
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    return sum(high_water_mark(member.pid) for member in members)
