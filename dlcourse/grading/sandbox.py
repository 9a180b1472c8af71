"""Run a student worker in its own process: bubblewrap where it works, resource limits always.

The worker sees the Python installation, the `dlcourse` package and one submission folder
(read-only), with no network and a private /tmp. It does not see the course repository, the
hidden tests, the datasets (labels) or other submissions. Without a working bubblewrap a
sandboxed worker refuses to start (SandboxUnavailable's message says what to do); a worker
asked for without a sandbox (`--unsandboxed`) still runs in a separate, limited process, and
`Worker.sandboxed` and every output say so.

`import torch` on the CUDA build maps about 3.2 GB of address space before touching any
memory, so RLIMIT_AS alone cannot enforce a memory limit near that size: the address-space
limit is set with headroom as a backstop, and the real limit is the grader watching the
memory the worker's process tree allocated (resident anonymous and shared memory). Pages of
mapped files (torch's libraries) are left out: how many of them are resident depends on the
machine's page cache, not on the student (the same import measured 230 MB of them here).
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from dlcourse.grading import cgroups, protocol
from dlcourse.grading.spec import Limits

BWRAP = Path("/usr/bin/bwrap")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the whole dlcourse package
AS_HEADROOM_MB = 4096  # address space the CUDA build of torch maps at import (measured 3.2 GB)
HIDDEN_DIRS = ("/usr/share/datasets", str(PACKAGE_DIR / "reference"))
# Course modules graded code may not import: the student process gets grading/unavailable.py
# in their place (the course's classifier, whose weights the student kit ships).
MASKED_MODULES = (PACKAGE_DIR / "classifier.py",)
UNAVAILABLE = PACKAGE_DIR / "grading" / "unavailable.py"
SANDBOX_MOUNT = "/submission"
POLL_S = 0.05  # the longest the grader goes without checking the worker's time and memory
PIPE_BYTES = 2**20  # pipe buffer asked for: a 31 MB test set then crosses in 31 writes, not 480
MAX_PROCESSES = 64  # tasks (processes and threads) of the worker's tree: the box's pids limit
SHM_MB = 64  # the sandbox's /dev/shm (a tmpfs: its pages count in the box's memory too)
# Isolated mode (-I): nothing in the submission folder (a `dlcourse/` of its own, say) or in
# PYTHON* variables can shadow the grader's modules; the package is put first on the path by
# its own location, the one the sandbox mounts, however the grader found it.
WORKER_BOOT = (
    f"import sys; sys.path.insert(0, {str(PACKAGE_DIR.parent)!r}); "
    "from dlcourse.grading.worker import main; main()"
)
NOBODY = 65534
# Who the student is inside: nobody, in a user namespace of its own, with every capability
# dropped and no way to make another user namespace. Run by root, bubblewrap otherwise leaves
# the sandbox root in its namespace: it could unmount what hides the data and remount the
# read-only binds writable.
UNPRIVILEGED = [
    "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY),
    "--cap-drop", "ALL", "--disable-userns",
]  # fmt: skip


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/<tid>/children.

    psutil's `children(recursive=True)` reads /proc/<pid>/stat of every process on the machine
    to find parents; polled 20 times a second while a submission runs, that cost the grader
    about 1.5 ms per poll here and grows with everything else the machine runs. The children
    files list only this tree: every thread's, since a thread can fork too. Where the kernel has
    no such files (CONFIG_PROC_CHILDREN off), psutil's walk is used: the same processes.
    """
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():
        try:
            return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
        except psutil.Error:
            return []
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in found:  # listed twice while it was being reparented: count it once
            continue
        found.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue  # exited since its parent listed it
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
    return found


def _allocated_bytes(pid: int) -> int:
    """Memory one process allocated and holds (0 once it is gone): RssAnon + RssShmem of
    /proc/<pid>/status, 20 times a second per process without psutil's per-process set-up."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        status = b""
    if b"RssAnon:" in status:
        total = 0
        for line in status.splitlines():
            if line.startswith((b"RssAnon:", b"RssShmem:")):
                total += int(line.split()[1]) * 1024
        return total
    try:  # no /proc here (an unsandboxed worker on another system): all resident memory
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _enlarge_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):  # a smaller system maximum, or no F_SETPIPE_SZ: still works
        pass


class WorkerError(RuntimeError):
    """The worker could not answer: it timed out, ran out of memory, or died. `cause` says which.

    `safety_stop` is set when a wall-clock limit stopped it: on a busy machine that says
    nothing about the submission, so the test is graded again, never marked down.
    """

    def __init__(self, cause: str, safety_stop: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.safety_stop = safety_stop


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap can build our sandbox on this machine (tried once per process)."""
    if not BWRAP.exists():
        return False
    cmd = [*bwrap_args(Path(tempfile.gettempdir())), sys.executable, "-I", "-c", "pass"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class SandboxUnavailable(RuntimeError):
    """Grading was asked for with a sandbox, and bubblewrap cannot build one here."""


def require_sandbox() -> None:
    """Raise SandboxUnavailable, with what to do, unless bubblewrap builds our sandbox here."""
    if bwrap_works():
        return
    why = "is not installed" if not BWRAP.exists() else "is installed but cannot build the sandbox"
    raise SandboxUnavailable(
        f"bubblewrap ({BWRAP}) {why}, so student code cannot be contained. Install it "
        "(as root: apt-get install bubblewrap, or `make system-deps`), or pass --unsandboxed "
        "to grade without containment (every output will say NOT SANDBOXED)"
    )


def bwrap_args(
    root: Path | None,
    mount: str = SANDBOX_MOUNT,
    writable: bool = False,
    binds: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    scratch_mb: int | None = None,
) -> list[str]:
    """bubblewrap's command line for a sandbox that sees Python, dlcourse and `root` only.

    `root` appears at `mount` (read-only unless `writable`); with `only`, just those files of it
    do (the grader's student process sees the notebook and the weight files the spec names,
    never a table in some other file of the folder). With `scratch_mb`, `mount` is instead an
    empty tmpfs of that size (the nbgrader kernel's scratch copy, filled from `binds`): what
    the student writes there is bounded, and never reaches the machine's disk.
    `binds` are further bubblewrap mount options. Everything else is read-only, and only /tmp
    (of a fixed size) and a writable `root` take writes: the sandbox's own root would otherwise
    be an unbounded tmpfs that fills the machine's memory.
    """
    args = [str(BWRAP), "--unshare-all", *UNPRIVILEGED, "--die-with-parent", "--new-session"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    # matplotlib builds its font list with fontconfig, which prints an error on stderr (and so
    # zeroes an nbgrader cell) when it cannot read its configuration.
    args += ["--ro-bind-try", "/etc/fonts", "/etc/fonts"]
    # The private /tmp comes before the binds: a later mount hides what lies under it, and the
    # venv or the package may well live under /tmp (a CI clone, say).
    # /dev read-only but for a sized /dev/shm: bwrap's own /dev is a tmpfs of no set size.
    shm = str(SHM_MB * 2**20)
    args += ["--proc", "/proc", "--dev", "/dev", "--size", shm, "--tmpfs", "/dev/shm"]
    args += ["--remount-ro", "/dev", "--size", str(256 * 2**20), "--tmpfs", "/tmp"]
    for d in {Path(sys.base_prefix).resolve(), Path(sys.prefix), PACKAGE_DIR}:
        if not str(d).startswith("/usr/"):
            args += ["--ro-bind", str(d), str(d)]
    for d in HIDDEN_DIRS:
        if Path(d).is_dir():
            args += ["--tmpfs", d]
    if scratch_mb is not None:
        args += ["--size", str(scratch_mb * 2**20), "--tmpfs", mount, *binds]
    elif only is None:
        args += ["--bind" if writable else "--ro-bind", str(root), mount, *binds]
    else:
        args += ["--dir", mount]
        for name in only:
            if (root / name).is_file():
                args += ["--ro-bind", str(root / name), f"{mount}/{name}"]
        args += list(binds)
    return [*args, "--remount-ro", "/", "--chdir", mount]


def _environment() -> dict[str, str]:
    # CPU only, one thread: deterministic results, and parallel grading jobs do not thrash.
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",  # no PYTHON* variables: the worker runs with -I, which ignores them
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "DLCOURSE_GRADE_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp",
    }


def _start_child(limits: Limits, box: cgroups.Box | None) -> None:
    """In the student process before it runs anything: its box, then its rlimits."""
    if box is not None:
        box.join()
    _set_limits(limits)


def _set_limits(limits: Limits) -> None:
    cpu = math.ceil(limits.cpu_limit)
    memory = (limits.memory_mb + AS_HEADROOM_MB) * 2**20
    fsize = limits.file_mb * 2**20
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full log fails writes; it does not kill


def _describe_exit(code: int, sandboxed: bool) -> str:
    sig = -code if code < 0 else (code - 128 if sandboxed and code > 128 else 0)
    if sig == signal.SIGXCPU:
        return "the student process used up its CPU-time limit"
    if sig == signal.SIGKILL:
        return "the student process was killed (SIGKILL), most likely out of memory"
    if sig:
        return f"the student process died from signal {signal.Signals(sig).name}"
    return f"the student process exited with code {code} (sys.exit or os._exit in its code?)"


class Worker:
    """One student process for one submission; answers `request`s until it dies or is closed."""

    def __init__(
        self,
        submission: Path,
        limits: Limits,
        sandbox: bool = True,
        setup: dict[str, Any] | None = None,
        files: tuple[str, ...] | None = None,
    ) -> None:
        self.submission = Path(submission).resolve()
        self.files = files  # what the process sees of the folder (None: all of it)
        self.setup = setup  # sent first to every process started (e.g. load the notebook)
        self.setup_reply: dict[str, Any] | None = None
        self.limits = limits
        self.sandboxed = sandbox
        self.budget_s = limits.wall_s  # shared by every process started for this submission
        self.proc: subprocess.Popen | None = None
        self._copy: tempfile.TemporaryDirectory | None = None
        self.start_seconds = 0.0
        self.last_cpu_s = 0.0  # CPU seconds of the student's process tree in the last call
        self._log = tempfile.TemporaryFile()
        self._checked_at = 0.0  # when the process tree's size and memory were last read
        self.box: cgroups.Box | None = None  # the cgroup of the current process (when there is one)
        self._cpu_at_start = 0.0  # CPU seconds of the process tree when the current wait began

    @property
    def note(self) -> str:
        limits = (
            "its memory and processes limited by a cgroup"
            if cgroups.hierarchy() is not None
            else "its memory and processes watched from outside (no cgroup here)"
        )
        if self.sandboxed:
            return (
                f"student code ran in a bubblewrap sandbox (no network, no grader files), {limits}"
            )
        # not "--unsandboxed": `dlcourse validate` also runs so where bubblewrap cannot
        return f"NOT SANDBOXED: student code ran in a limited process only, {limits}"

    def start(self) -> None:
        """Start the process, wait until it has imported torch, then send `setup`."""
        t0 = time.perf_counter()
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        for fd in (self._req_w, resp_w):
            _enlarge_pipe(fd)
        cmd = [sys.executable, "-I", "-c", WORKER_BOOT, str(req_r), str(resp_w)]
        cwd = self.submission
        if self.sandboxed:
            try:
                require_sandbox()  # never fall back silently to an uncontained process
            except SandboxUnavailable as exc:
                raise WorkerError(str(exc)) from None
            masks = tuple(
                a
                for m in MASKED_MODULES
                if m.is_file()
                for a in ("--ro-bind", str(UNAVAILABLE), str(m))
            )
            cmd = [*bwrap_args(self.submission, SANDBOX_MOUNT, binds=masks, only=self.files), *cmd]
        else:  # no read-only mount: work on a copy so the submission cannot be changed
            if self._copy is None:
                self._copy = tempfile.TemporaryDirectory(prefix="dlcourse-submission-")
                for name in self.files or []:
                    if (self.submission / name).is_file():
                        shutil.copy(self.submission / name, Path(self._copy.name) / name)
                if self.files is None:
                    shutil.copytree(self.submission, self._copy.name, dirs_exist_ok=True)
            cwd = Path(self._copy.name)
        self._close_box()
        if cgroups.hierarchy() is not None:
            self.box = cgroups.Box(self.limits.memory_mb * 2**20, MAX_PROCESSES)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(req_r, resp_w),
            cwd=cwd,
            env=_environment(),
            preexec_fn=functools.partial(_start_child, self.limits, self.box),
            start_new_session=True,
        )
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(self._req_w, False)  # a worker that stops reading must not block us
        self._buffer = bytearray()
        self._cpu_at_start = 0.0  # a new process: all its CPU time is this wait's
        try:
            self._read_reply(t0, self.limits.startup_s, "start of Python and torch")
        except EOFError:
            raise WorkerError(self._death_cause()) from None
        finally:
            self.start_seconds = time.perf_counter() - t0
            self.budget_s -= self.start_seconds
        if self.setup is not None:
            self.setup_reply = self._exchange(self.setup)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for the reply within the call and wall-clock limits.

        A dead worker is restarted (and set up again) first; a reply that never comes kills it.
        """
        if self.proc is None or self.proc.poll() is not None:
            self._close_fds()
            self.start()
        return self._exchange(message)

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.budget_s <= 0:
            self.close()
            raise WorkerError(
                f"the submission used up its wall-clock budget of {self.limits.wall_s:g} s",
                safety_stop=True,
            )
        t0 = time.perf_counter()
        cpu0 = self._cpu_at_start = self.cpu_seconds()
        try:
            self._send(protocol.encode(message), t0)
            reply = self._read_reply(t0, self.limits.call_s, "call")
            self.last_cpu_s = self.cpu_seconds() - cpu0
            return reply
        except (BrokenPipeError, EOFError):
            raise WorkerError(self._death_cause()) from None
        finally:
            self.budget_s -= time.perf_counter() - t0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the worker's process tree, read by the grader from its
        box (which keeps the time of processes that have exited) or from /proc.

        Unlike wall-clock time it barely moves when the machine is busy, and unlike anything
        the student process reports it cannot be faked from inside.
        """
        if self.proc is None:
            return 0.0
        if self.box is not None and (cpu := self.box.cpu_seconds()) is not None:
            return cpu
        total = 0.0
        for pid in _descendants(self.proc.pid):
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def _send(self, data: bytes, t0: float) -> None:
        view = memoryview(data)
        while view:
            self._check(t0, self.limits.call_s, "call")
            _, ready, _ = select.select([], [self._req_w], [], POLL_S)
            if ready:
                try:
                    view = view[os.write(self._req_w, view[: 2**16]) :]
                except BlockingIOError:
                    continue

    def _check(self, t0: float, limit: float, what: str) -> None:
        """Kill the worker if it is over its time or memory limit, with the cause.

        The time every call; the process tree at most every POLL_S (what a quiet wait does
        anyway), not for each 64 KB written while a large message is on its way.

        A wall-clock stop says nothing about the submission when the machine was busy: it is a
        safety stop (graded again). But a call that spent as many CPU seconds as its wall-clock
        limit was not starved of the CPU, it was running: an endless loop is the student's.
        """
        timeout = min(limit, self.budget_s)
        if time.perf_counter() - t0 > timeout:
            spent = self.cpu_seconds() - self._cpu_at_start
            self.close()
            if timeout < limit:
                raise WorkerError(
                    f"the submission used up its wall-clock budget of {self.limits.wall_s:g} s",
                    safety_stop=True,
                )
            if what == "call" and spent >= self.limits.call_cpu_limit:
                raise WorkerError(
                    f"the {what} used {spent:.0f} CPU seconds without an answer (limit "
                    f"{self.limits.call_cpu_limit:g} s): an endless loop?"
                )
            raise WorkerError(
                f"stopped after {limit:g} s of wall clock ({what} limit) with {spent:.0f} CPU "
                "seconds spent",
                safety_stop=True,
            )
        now = time.perf_counter()
        if now - self._checked_at < POLL_S:
            return
        self._checked_at = now
        if self.box is not None:  # the kernel enforces the limits; the grader stops the rest
            if cause := self.box.describe_death():
                self.close()
                raise WorkerError(cause)
            return
        count, rss = self._tree()
        if count > MAX_PROCESSES:
            self.close()
            raise WorkerError(
                f"the student process started {count} processes (limit {MAX_PROCESSES})"
            )
        if rss > self.limits.memory_mb:
            self.close()
            raise WorkerError(
                f"out of memory: the student process used {rss:.0f} MB "
                f"(limit {self.limits.memory_mb} MB)"
            )

    def _read_reply(self, t0: float, limit: float, what: str) -> dict[str, Any]:
        while True:
            self._check(t0, limit, what)
            ready, _, _ = select.select([self._resp_r], [], [], POLL_S)
            if ready:
                chunk = os.read(self._resp_r, 2**20)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
                reply = self._parse()
                if reply is not None:
                    return reply

    def _parse(self) -> dict[str, Any] | None:
        if len(self._buffer) < protocol.HEADER.size:
            return None
        (length,) = protocol.HEADER.unpack_from(self._buffer)
        if length > protocol.MAX_MESSAGE_BYTES:
            self.close()
            raise WorkerError(f"the student process sent a reply of {length} bytes (too large)")
        end = protocol.HEADER.size + length
        if len(self._buffer) < end:
            return None
        data = bytes(self._buffer[protocol.HEADER.size : end])
        del self._buffer[:end]
        try:
            reply = protocol.decode(data)
        except protocol.ProtocolError as exc:
            self.close()
            raise WorkerError(f"the student process sent an unreadable reply ({exc})") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self.close()
            raise WorkerError("the student process sent a malformed reply")
        return reply

    def _tree(self) -> tuple[int, float]:
        """Number of processes in the worker's tree and the memory they allocated, in MB."""
        pids = _descendants(self.proc.pid)
        return len(pids), sum(_allocated_bytes(pid) for pid in pids) / 2**20

    def _death_cause(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.close()
            return "the student process closed its channel and had to be killed"
        self._close_fds()
        tail = " ".join(self.output_tail().split())
        cause = (self.box and self.box.describe_death()) or _describe_exit(code, self.sandboxed)
        return f"{cause}; its last output: {tail}" if tail else cause

    def output_tail(self, limit: int = 300) -> str:
        """The end of what the student process printed (capped by the worker)."""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - limit))
        return self._log.read().decode("utf-8", "replace")

    def _close_fds(self) -> None:
        for name in ("_req_w", "_resp_r"):
            fd = getattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def close(self) -> None:
        """Kill the process (its whole box, or its whole session) and release the pipes."""
        if self.box is not None:
            self.box.kill()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._close_fds()

    def _close_box(self) -> None:
        if self.box is not None:
            self.box.close()
            self.box = None

    def cleanup(self) -> None:
        """Close, remove the box, and remove the working copy used when not sandboxed."""
        self.close()
        self._close_box()
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
