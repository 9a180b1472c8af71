"""Grader processes forked from one that has imported torch, pytest and the grading modules once.

Each submission is graded by a pytest process of its own (see runner.py): its test modules,
their caches and any crash stay with that submission. Started from scratch, that process spent
2.5 CPU seconds on starting Python and importing torch, pytest and the plugin before its first
test (a tenth of grading one CW1 submission; `python bench/grade_bench.py --assignment cw1`).
A multiprocessing forkserver imports them once per grading command and forks each grader
process from that state instead. Every submission still gets a process of its own with
untouched module state, since the server never imports a test module nor runs a test; the
hidden tests and the student's worker run exactly as before.

Environment variables that libraries read when they are loaded (OMP_NUM_THREADS for torch's
thread pool) are applied again in each forked process. As with any multiprocessing start method
but fork, each grader process imports the main module again (as __mp_main__): a script that
grades keeps its top-level code under `if __name__ == "__main__":`, as dlcourse's commands, pytest
and nbgrader do. DLCOURSE_GRADER_FORK=0 starts every grader process with a fresh
`python -m pytest` instead, as does a platform without forkserver.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from dlcourse.grading.cgroups import Box

# Imported once by the server. Not the plugin itself: pytest rewrites the asserts of a `-p`
# plugin only if it imports it, so the plugin stays for each grader process (a few ms). Also what
# a grader process would import later on: pdb (pytest's debugging plugin), torch's serialization
# config, and torch's symbolic shapes with sympy, which the first `tensor.backward(gradient)` of
# a process imports (0.3 to 0.5 CPU s; CW1's layer tests do that).
PRELOAD = [
    "numpy",
    "torch",
    "torch.utils.serialization",
    "torch.fx.experimental.symbolic_shapes",
    "pytest",
    "pdb",
    "dlcourse.grading.student",
    "dlcourse.grading.measurements",
    "dlcourse.grading.results",
    "dlcourse.grading.heldout",
    "dlcourse.data",
    "dlcourse.metrics",
]

_lock = threading.Lock()
_context: multiprocessing.context.BaseContext | None = None


def _forkserver() -> multiprocessing.context.BaseContext | None:
    global _context
    if os.environ.get("DLCOURSE_GRADER_FORK", "1") == "0":
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    with _lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
    return _context


def run_pytest(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float, box: Box | None = None
) -> tuple[int | None, str]:
    """`python -m pytest ARGS` in `cwd` with exactly `env`, in `box` when given: (exit code,
    or None when it was killed after `timeout` seconds; its stdout followed by its stderr)."""
    ctx = _forkserver()
    if ctx is None:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=cwd,
                timeout=timeout,
                preexec_fn=box.join if box is not None else None,
            )
        except subprocess.TimeoutExpired:
            return None, ""
        return proc.returncode, proc.stdout + proc.stderr
    with tempfile.TemporaryDirectory(prefix="dlcourse-grader-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        proc = ctx.Process(target=_grader_main, args=(args, env, str(cwd), str(out), str(err), box))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()  # its worker follows: bubblewrap runs it with --die-with-parent
            proc.join()
            code = None
        else:
            code = proc.exitcode
        log = "".join(p.read_text(errors="replace") for p in (out, err) if p.is_file())
    return code, log


def _grader_main(
    args: list[str], env: dict[str, str], cwd: str, out: str, err: str, box: Box | None
) -> None:
    """In the forked process: enter `box`, and become `python -m pytest ARGS` run in `cwd`
    with `env`."""
    if box is not None:
        box.join()
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = env.get("PYTHONDONTWRITEBYTECODE", "") != ""
    sys.path.insert(0, cwd)  # what `python -m` puts first
    sys.argv = ["pytest", *args]
    import pytest
    import torch

    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # libgomp read the server's environment
        torch.set_num_threads(int(threads))
    try:
        code = pytest.console_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - into the log, as `python -m pytest` would print it
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))
