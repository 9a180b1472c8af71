"""Limits the kernel enforces on a student's process tree: one cgroup (a "box") per tree.

Polling a process tree misses what no process's RSS shows (a tmpfs such as /dev/shm, memfds no
one maps, the page cache of files written) and cannot stop a fork bomb before it has forked;
rlimits count processes per user, and outside the sandbox the user is root. A cgroup counts all
of it: its memory limit covers anonymous, shared (tmpfs, memfd) and file pages, and the kernel
OOM-kills inside the box when it is reached; its pids limit makes fork fail past the count.
The box also keeps the CPU time of processes that have exited, and lets the grader kill every
process of the tree at once.

Where the kernel offers them, as tried once per process (`hierarchy()`):
- cgroup v2 with the memory and pids controllers delegated to this process's own cgroup (e.g.
  the grader started with `systemd-run --user --scope -p Delegate=yes ...`, or a container
  given a cgroup namespace): boxes are made below it, after this process moves itself into a
  leaf of its own (v2 allows processes only in leaves of a subtree that hands out controllers);
- cgroup v1 memory and pids hierarchies writable by this process (root, as on the course's
  grading machines): boxes are made below this process's own cgroup in each, so every limit
  already on it still applies; a freezer hierarchy, when there is one, stops a fork bomb
  before it is killed, and cpuacct gives the CPU time.

`unavailable()` says why neither works here; the callers then fall back to what they can do
from outside (rlimits, polling) and say so. On Slurm, the task's own cgroup (`--mem`, with
TaskPlugin=task/cgroup) bounds the whole task as well (README, Slurm section).

`python -m dlcourse.grading.cgroups join DIR... -- COMMAND...` puts itself into the boxes'
directories and then becomes COMMAND: how a process started by someone else's code (the
Jupyter kernel, started by jupyter_client) is boxed from its first instruction.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpuacct", "freezer")  # the first two are required
KILL_WAIT_S = 10.0  # how long close() waits for killed processes to leave the box


class CgroupsUnavailable(RuntimeError):
    """No cgroup this process may create boxes in; the message says what was tried."""


@dataclass(frozen=True)
class Hierarchy:
    """Where boxes are made: v2, one directory; v1, a directory per controller."""

    version: int
    parents: dict[str, Path]  # v2: {"": dir}; v1: controller -> dir


def _own_paths() -> dict[str, str]:
    """This process's cgroup in each hierarchy: {"memory": "/a/b", ..., "": "/..." (v2)}."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c.removeprefix("name=")] = path
    return paths


def _writable(d: Path) -> bool:
    return d.is_dir() and os.access(d, os.W_OK)


def _v2() -> Hierarchy | None:
    """The delegated v2 cgroup of this process, made ready to hold boxes, or None."""
    if not (CGROUP_FS / "cgroup.controllers").is_file():
        return None  # /sys/fs/cgroup is not a v2 mount
    own = CGROUP_FS / _own_paths().get("", "/").lstrip("/")
    wanted = {"memory", "pids"}
    if not _writable(own) or not wanted <= set((own / "cgroup.controllers").read_text().split()):
        return None
    try:
        enabled = set((own / "cgroup.subtree_control").read_text().split())
        if not wanted <= enabled:
            leaf = own / "dlcourse-grader"  # v2: no process may stay where controllers go down
            leaf.mkdir(exist_ok=True)
            for pid in (own / "cgroup.procs").read_text().split():
                (leaf / "cgroup.procs").write_text(pid)
            extra = {"cpu"} & set((own / "cgroup.controllers").read_text().split())
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted | extra))
    except OSError:
        return None
    return Hierarchy(2, {"": own})


def _v1() -> Hierarchy | None:
    """Writable v1 hierarchies, below this process's own cgroup in each, or None."""
    paths = _own_paths()
    parents = {}
    for c in V1_CONTROLLERS:
        d = CGROUP_FS / c / paths.get(c, "/").lstrip("/")
        if c in paths and _writable(d):
            parents[c] = d
    if not {"memory", "pids"} <= set(parents):
        return None
    return Hierarchy(1, parents)


@functools.cache
def hierarchy() -> Hierarchy | None:
    """Where this machine lets this process make boxes (tried once per process)."""
    try:
        return _v2() or _v1()
    except OSError:
        return None


def unavailable() -> str | None:
    """Why no box can be made here (None when one can): for messages and notes."""
    if hierarchy() is not None:
        return None
    return (
        "no cgroup to limit student processes by: neither a cgroup v2 with the memory and pids "
        "controllers delegated to this process (start the grader with `systemd-run --user "
        "--scope -p Delegate=yes ...`) nor writable cgroup v1 memory and pids hierarchies "
        "(run as root)"
    )


@dataclass
class Box:
    """A cgroup for one process tree, with a memory limit (bytes) and a pids limit."""

    memory_bytes: int
    pids: int
    who: str = "the student's processes"  # for messages
    name: str = field(default_factory=lambda: f"dlcourse-{uuid.uuid4().hex[:12]}")
    dirs: dict[str, Path] = field(init=False)
    version: int = field(init=False)

    def __post_init__(self) -> None:
        h = hierarchy()
        if h is None:
            raise CgroupsUnavailable(unavailable())
        self.version = h.version
        self.dirs = {c: parent / self.name for c, parent in h.parents.items()}
        for d in self.dirs.values():
            d.mkdir()
        if self.version == 2:
            self._write("", "memory.max", self.memory_bytes)
            self._write("", "memory.swap.max", 0, optional=True)
            self._write("", "pids.max", self.pids)
        else:
            self._write("memory", "memory.limit_in_bytes", self.memory_bytes)
            self._write("memory", "memory.memsw.limit_in_bytes", self.memory_bytes, optional=True)
            self._write("pids", "pids.max", self.pids)

    def _file(self, controller: str, name: str) -> Path:
        return self.dirs["" if self.version == 2 else controller] / name

    def _write(self, controller: str, name: str, value: object, optional: bool = False) -> None:
        try:
            self._file(controller, name).write_text(str(value))
        except OSError:
            if not optional:
                raise

    def _read(self, controller: str, name: str) -> str:
        try:
            return self._file(controller, name).read_text()
        except (OSError, KeyError):
            return ""

    def _count(self, controller: str, name: str, key: str) -> int:
        for line in self._read(controller, name).splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
        return 0

    @property
    def procs_files(self) -> list[Path]:
        """The cgroup.procs files a process writes its pid into to enter the box."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def join(self) -> None:
        """Put the calling process into the box (call it in the child, before exec)."""
        for f in self.procs_files:
            f.write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for the box's memory limit."""
        if self.version == 2:
            return self._count("", "memory.events", "oom_kill")
        return self._count("memory", "memory.oom_control", "oom_kill")

    def process_limit_hits(self) -> int:
        """How many forks the pids limit refused."""
        return self._count("pids", "pids.events", "max")

    def memory_peak(self) -> int:
        """The most memory the box held at once, in bytes (v2 kernels before 5.19: now)."""
        if self.version == 2:
            peak = self._read("", "memory.peak") or self._read("", "memory.current")
        else:
            peak = self._read("memory", "memory.max_usage_in_bytes")
        return int(peak or 0)

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that ran in the box, exited ones included (None: not
        accounted here)."""
        if self.version == 2:
            usec = self._count("cpu", "cpu.stat", "usage_usec")
            return usec / 1e6 if self._read("", "cpu.stat") else None
        if "cpuacct" not in self.dirs:
            return None
        ns = self._read("cpuacct", "cpuacct.usage")
        return int(ns) / 1e9 if ns else None

    def pids_in(self) -> list[int]:
        return [int(p) for p in self._read("pids", "cgroup.procs").split()]

    def kill(self) -> None:
        """SIGKILL every process in the box (frozen first where a freezer exists, so a fork
        bomb cannot fork while it is being killed)."""
        if self.version == 2 and self._file("", "cgroup.kill").exists():
            self._write("", "cgroup.kill", 1, optional=True)
            return
        frozen = "freezer" in self.dirs and self._freeze("FROZEN")
        for _ in range(100):
            pids = self.pids_in()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if frozen:
            self._freeze("THAWED")  # killed processes only exit once thawed

    def _freeze(self, state: str) -> bool:
        try:
            self._file("freezer", "freezer.state").write_text(state)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Kill what is left and remove the box (a box holding processes cannot be removed:
        after KILL_WAIT_S it is left, and the next kill of its processes frees it)."""
        deadline = time.monotonic() + KILL_WAIT_S
        while True:
            self.kill()
            if not self.pids_in() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for d in self.dirs.values():
            try:
                d.rmdir()
            except OSError:
                pass

    def describe_death(self) -> str | None:
        """What the box's limits did, if anything: for the message of a process that died."""
        if self.oom_kills():
            return (
                f"out of memory: {self.who} used {self.memory_peak() / 2**20:.0f} MB (limit "
                f"{self.memory_bytes / 2**20:.0f} MB)"
            )
        if self.process_limit_hits():
            return f"process limit: {self.who} tried to run more than {self.pids} at once"
        return None


def main(argv: list[str]) -> int:
    """`join DIR... -- COMMAND...`: enter the boxes at DIR... and become COMMAND."""
    if len(argv) < 3 or argv[0] != "join" or "--" not in argv:
        print("usage: python -m dlcourse.grading.cgroups join DIR... -- CMD...", file=sys.stderr)
        return 2
    split = argv.index("--")
    for d in argv[1:split]:
        Path(d, "cgroup.procs").write_text(str(os.getpid()))
    os.execvp(argv[split + 1], argv[split + 1 :])
    return 127  # not reached: execvp returns only by raising


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
