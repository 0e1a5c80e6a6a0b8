"""Who runs a trial: a worker identity that is unique across hosts, boots, PID namespaces and
pid reuse, and the one question it answers: is that worker's process certainly gone?

The ``worker`` user attr of a trial is ``host:pid:boot:pidns:start``: hostname, pid, the
kernel's boot id, the PID namespace's inode and the process start time (clock ticks since
boot). "pid not alive" is trusted only when host, boot and PID namespace are this process's
own (a container with the same hostname has other pids; after a reboot pids mean nothing)
and a live pid with another start time is a reused pid. Anything else is judged by its
heartbeat alone.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "?"
    return "".join(c for c in link if c.isdigit()) or "?"


def _start_time(pid: int) -> str:
    stat = _read(f"/proc/{pid}/stat")
    if stat == "?":
        return "?"
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else "?"


@dataclass(frozen=True)
class WorkerId:
    """The parts of a worker identity."""

    host: str
    pid: int
    boot: str
    pidns: str
    start: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.boot}:{self.pidns}:{self.start}"

    @classmethod
    def parse(cls, text: str) -> WorkerId | None:
        """``None`` for anything else (e.g. an older ``host:pid``: judged by heartbeat)."""
        parts = text.split(":")
        if len(parts) != 5 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3], parts[4])


@functools.cache
def _this_process(pid: int) -> WorkerId:
    boot = _read("/proc/sys/kernel/random/boot_id")
    return WorkerId(socket.gethostname(), pid, boot, _pid_namespace(), _start_time(pid))


def this_worker() -> WorkerId:
    """This process's identity (cached per pid: a forked worker gets its own)."""
    return _this_process(os.getpid())


def worker_id() -> str:
    """This process's identity as stored in the ``worker`` trial user attr."""
    return str(this_worker())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_gone(worker: str) -> bool:
    """True only when ``worker``'s process certainly no longer runs: it ran on this host, in
    this boot and this PID namespace, and its pid is free or now names another process."""
    other = WorkerId.parse(worker)
    me = this_worker()
    if other is None or "?" in (me.boot, me.pidns, other.boot, other.pidns):
        return False
    if (other.host, other.boot, other.pidns) != (me.host, me.boot, me.pidns):
        return False
    if not _pid_alive(other.pid):
        return True
    return other.start != "?" and _start_time(other.pid) not in ("?", other.start)
