"""The processes a benchmark row involves: finding the stack's servers, reading CPU and memory.

Standard library only, so the sync process can import it without growing its own RSS."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from devstack import es_node
from devstack.common import pid_file, read_pid

# stack service (its PID file's name) -> what its command line contains
MARKERS = {
    "elasticsearch": "org.elasticsearch.bootstrap.Elasticsearch",
    "ferretdb": "ferretdb",
    "moto": "moto_server",
}
# each Elasticsearch version's node has a PID file of its own
PID_FILES = {"elasticsearch": es_node.pid_name()}
# a source's service type -> the stack service that serves it (a folder has no server)
SOURCE_SERVERS = {"mongodb": "ferretdb", "s3": "moto"}


def stack_pid(service: str) -> int | None:
    """A stack server's pid: its PID file when that still names it, else a /proc scan of
    command lines (a server started by hand)."""
    marker = MARKERS[service]
    recorded = read_pid(pid_file(PID_FILES.get(service, service)))
    if recorded is not None and marker in _cmdline(recorded):
        return recorded
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if marker in _cmdline(int(entry.name)):
                return int(entry.name)
    return None


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (all threads), from /proc/<pid>/stat;
    None when it cannot be read."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces; fields 3.. follow it
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's user + system CPU seconds (every thread), at full getrusage precision."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_snapshot(servers: dict[str, int | None]) -> dict[str, float | None]:
    """CPU seconds so far of this process ("own") and of each named server, read together so
    that two snapshots bracket the same stretch of time for all of them."""
    return {"own": own_cpu_seconds(), **{name: cpu_seconds(pid) for name, pid in servers.items()}}


def cpu_spent(before: dict, after: dict) -> dict[str, float | None]:
    """Per process, the CPU seconds between two snapshots; None where either reading failed."""
    return {
        name: None if start is None or after.get(name) is None else after[name] - start
        for name, start in before.items()
    }


def started_at(pid: int | str = "self") -> float:
    """When a process started, in seconds since the epoch: now minus its age, the age from two
    clocks since boot (/proc/uptime, and its start in /proc/<pid>/stat), both to 10 ms. (Boot
    time + start would be off by up to a second: /proc/stat gives the boot time in whole
    seconds.)"""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks
    return time.time() - age


def memory_mb(pid: int | str = "self", field: str = "VmRSS") -> float | None:
    """A /proc/<pid>/status memory field (VmRSS now, VmHWM its peak) in MB; None if unreadable."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    return None
