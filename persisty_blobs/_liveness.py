"""Whether the process that left a temp file or a write lease behind is still alive.

A bare PID is not enough: from another PID namespace (a container) or after a reboot the same
number names another process. Every store that cleans up after dead writers asks this module.
"""

from __future__ import annotations

import os
import sys

__all__ = ["local_owner", "owner_is_gone", "process_alive"]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_known: tuple[int, str | None] | None = None


def local_owner() -> str | None:
    """Who is writing, in a form ``owner_is_gone`` can check on the same machine: boot,
    PID namespace and PID. None where that cannot be told (then only a lease decides).
    Worked out once per process: a forked child, with its own PID, works it out again."""
    global _known
    known = _known
    if known is not None and known[0] == os.getpid():
        return known[1]
    owner = _work_out_owner()
    _known = (os.getpid(), owner)
    return owner


def _work_out_owner() -> str | None:
    if sys.platform != "linux":
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            boot = file.read().strip()
        pid_namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{pid_namespace}:{os.getpid()}"


def owner_is_gone(owner: str | None) -> bool:
    """True only if ``owner`` ran on this machine, in this PID namespace, and has exited."""
    here = local_owner()
    if owner is None or here is None or owner.count(":") < 2:
        return False
    boot, namespace, pid = owner.rsplit(":", 2)
    same_machine = here.startswith(f"{boot}:{namespace}:")
    return same_machine and pid.isdigit() and not process_alive(int(pid))
