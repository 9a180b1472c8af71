"""nbgrader steps that make plain `nbgrader autograde A` safe and complete.

nbgrader_config.py puts these into the Autograde converter's own pipelines, so the command the
teaching assistants know is the isolated one:

- `RejectSpecialFiles` (first sanitize step): a submission holding a symbolic link, a device or
  a pipe is refused with a message before any of it is graded.
- `DeduplicateIds`: nbgrader's, fixed so that a copied cell does not crash the restore of
  missing cells (nbgrader 0.9.6 empties the metadata and then reads its grade_id).
- `OverwriteCells`: nbgrader's, without its "checksum ... has changed" warning for a test cell
  the student left as released (the gradebook holds it with its hidden tests, the release
  without: nbgrader warned about every such cell of an unmodified notebook).
- `SandboxedExecute` (instead of nbgrader's Execute): the student's kernel runs in a cgroup of
  its own (memory, processes) and in the bubblewrap sandbox, on a copy of the student's folder
  in a sized tmpfs. It sees Python, the `dlcourse` package and the training data, nothing of
  the course (hidden tests, solutions, weights, gradebook, other students). The notebook client
  stays in the trusted process and talks to the kernel over Unix sockets, so the kernel cannot
  write its own outputs; it counts what the kernel prints in bytes and stops it past a limit.
  When the step ends, its cgroup is emptied: no process of the student outlives it.
- `SaveAutoGrades` (instead of nbgrader's): the kernel decides no point. nbgrader would give
  an autograder test cell its points when the cell ran without an error, and the student's
  kernel owns whatever decides that (its environment, the check helpers, the asserts). Test
  cells are saved as 0, waiting for a person, until the isolated grader writes their score;
  written answers are saved as nbgrader saves them.
- `IsolatedGrades` (after SaveAutoGrades): the hidden tests of grader_tests/A run on the
  submitted folder in the isolated grader, and their points go into the gradebook cells named
  by GRADE_CELL, with the grader's notes (sandbox, copied weights) in a gradebook comment. A
  cell it cannot mark (grading refused, failed or stopped, no test for it) stays 0 and waits
  for a person, and each test cell of the autograded notebook gets the grader's verdict as an
  output, which nbgrader's feedback shows under the cell.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_output
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor
from nbgrader.preprocessors import DeduplicateIds as _DeduplicateIds
from nbgrader.preprocessors import OverwriteCells as _OverwriteCells
from nbgrader.preprocessors import SaveAutoGrades as _SaveAutoGrades
from traitlets import Bool, List, Unicode

from dlcourse.grading import cgroups, sandbox, submission
from dlcourse.grading.spec import Limits

if TYPE_CHECKING:
    from dlcourse.grading.gradebook import CellMark
    from dlcourse.grading.results import GradingResults

KERNEL_MOUNT = "/submission"
KERNEL_INPUTS = "/submission.in"  # the student's files, read-only, copied into KERNEL_MOUNT
KERNEL_PIDS = 256  # tasks (processes and threads) of the kernel's box
OUTPUT_CELL_BYTES = 10 * 2**20  # what one cell may print and display
OUTPUT_NOTEBOOK_BYTES = 25 * 2**20  # what the whole notebook may
MAX_MESSAGE_BYTES = OUTPUT_CELL_BYTES + 2**20  # larger kernel messages are dropped unread
WATCH_S = 0.5  # how often the kernel's box is looked at while the notebook runs
# The only variables the kernel gets: what a notebook needs to run as the student ran it.
PASSED_ENV = ("DLCOURSE_SMOKE", "DLCOURSE_DEVICE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
KERNEL_AS_MB = 16384  # address-space backstop (the CUDA build of torch maps 3.2 GB at import)
KERNEL_FILE_MB = 512


class RejectSpecialFiles(NbGraderPreprocessor):
    """Refuse a submission that holds anything but regular files and folders (never follow)."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        folder = Path(resources["metadata"]["path"])
        problems = submission.special_files(folder)
        if problems:
            raise submission.SubmissionRejected(f"{folder}: " + "; ".join(problems))
        return nb, resources


class DeduplicateIds(_DeduplicateIds):
    """nbgrader's step, removing the whole nbgrader metadata of earlier copies of a cell."""

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        had = "nbgrader" in cell.metadata
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if had and cell.metadata.get("nbgrader") == {}:
            del cell.metadata["nbgrader"]  # nbgrader 0.9.6 leaves {} and later reads grade_id
        return cell, resources


class OverwriteCells(_OverwriteCells):
    """nbgrader's step; a locked cell whose source is the released one (the recorded source
    with its hidden tests cleared) gets the recorded source first, so that only a cell the
    student changed is reported as changed."""

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid is not None:
            try:
                recorded = self.gradebook.find_source_cell(
                    gid, self.notebook_id, self.assignment_id
                )
            except MissingEntry:
                recorded = None
            if recorded is not None and recorded.locked and cell.source == self._released(recorded):
                cell.source = recorded.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released(self, recorded: Any) -> str:
        released = new_code_cell(recorded.source)
        ClearHiddenTests(config=self.config)._remove_hidden_test_region(released)
        return released.source


class _CappedContext(zmq.asyncio.Context):
    """ZeroMQ context whose sockets drop any message over MAX_MESSAGE_BYTES.

    A message is received whole before anyone can look at it: one `print` of a gigabyte would
    take that (several times over, once decoded) in the trusted process. libzmq refuses larger
    messages instead, dropping the connection that sent one (which then reconnects).
    """

    def socket(self, *args: Any, **kwargs: Any) -> Any:
        sock = super().socket(*args, **kwargs)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        return sock


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel in its own cgroup, inside bubblewrap, reached over Unix sockets in a folder both
    sides see; its working directory a sized tmpfs filled with the student's files."""

    inputs = List(help="(host folder, name) of what the scratch folder is filled from, in order")
    runtime = Unicode(help="folder of the connection file and the kernel's sockets")
    unsandboxed = Bool(False)
    work = Unicode(help="the scratch folder when unsandboxed (a folder of the host)")

    def __init__(self, box: cgroups.Box | None = None, disk_mb: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.box, self.disk_mb = box, disk_mb
        self.transport = "ipc"
        self.ip = str(Path(self.runtime) / "kernel")
        self.connection_file = str(Path(self.runtime) / "connection.json")

    def client(self, **kwargs: Any) -> Any:
        kwargs.setdefault("context", _CappedContext())
        return super().client(**kwargs)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        limits = [
            "/usr/bin/prlimit", f"--as={KERNEL_AS_MB * 2**20}",
            f"--fsize={KERNEL_FILE_MB * 2**20}", "--core=0", "--",
        ]  # fmt: skip
        join = []
        if self.box is not None:  # enters the box before anything of the kernel runs
            join = [sys.executable, "-m", "dlcourse.grading.cgroups", "join"]
            join += [str(f.parent) for f in self.box.procs_files] + ["--"]
        if self.unsandboxed:
            return [*join, *limits, *cmd]
        binds: tuple[str, ...] = ("--bind", self.runtime, self.runtime)
        for folder, name in self.inputs:
            binds += ("--ro-bind", folder, f"{KERNEL_INPUTS}/{name}")
        env = kernel_environment(self.runtime)
        data = _data_dir()
        if data is not None:  # the notebooks train on it; the private test set is not there
            binds += ("--ro-bind", str(data), str(data))
            env["DLCOURSE_DATA"] = str(data)
        args = sandbox.bwrap_args(None, KERNEL_MOUNT, binds=binds, scratch_mb=self.disk_mb)
        args.append("--clearenv")
        for key, value in env.items():
            args += ["--setenv", key, value]
        # Copy the student's files into the scratch tmpfs (nbgrader's copy last: its notebook
        # and the files it restored win), then become the kernel.
        names = " ".join(f"{KERNEL_INPUTS}/{name}/." for _, name in self.inputs)
        fill = f'for d in {names}; do cp -R "$d" {KERNEL_MOUNT}/ || exit 1; done; exec "$@"'
        return [*join, *args, *limits, "/bin/sh", "-c", fill, "sh", *cmd]


def kernel_environment(runtime: str) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp",
        "IPYTHONDIR": "/tmp/.ipython",
        "JUPYTER_RUNTIME_DIR": runtime,
        "NBGRADER_EXECUTION": "autograde",
        "CUDA_VISIBLE_DEVICES": "",
        # The notebook imports the dlcourse the sandbox mounts, however the grader found it.
        "PYTHONPATH": str(sandbox.PACKAGE_DIR.parent),
    }
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    return env


def _data_dir() -> Path | None:
    from dlcourse import data

    try:
        return data.find_fashion_mnist(download=False).resolve()
    except data.DataNotFoundError:
        return None


class SandboxedExecute(Execute):
    """nbgrader's Execute with the kernel boxed and sandboxed, its output counted in bytes.

    The kernel runs in a cgroup of its own (memory incl. tmpfs, processes), in bubblewrap, on a
    sized tmpfs copy of the student's folder. What it prints is counted as it arrives: past
    OUTPUT_CELL_BYTES in one cell or OUTPUT_NOTEBOOK_BYTES in all, the kernel is stopped. A
    kernel that dies or is stopped (out of memory, a fork bomb, an output flood) ends the run
    with the reason in the cell where it happened; the cells after it are marked as not run,
    and the notebook goes on through nbgrader's pipeline: its points come from the isolated
    grader, which does not need the kernel.
    """

    unsandboxed = Bool(
        False, help="run the kernel without bubblewrap (every output says NOT SANDBOXED)"
    ).tag(config=True)
    tests_dir = Unicode(
        "", help="hidden tests folder, for the limits (default: <course root>/grader_tests/<a>)"
    ).tag(config=True)

    def preprocess(self, nb: Any, resources: Any, km: Any = None) -> tuple[Any, Any]:
        if not self.unsandboxed:
            sandbox.require_sandbox()
        folder = resources["metadata"]["path"]
        limits = self._limits(resources)
        self._stopped: str | None = None
        self._cell_bytes: dict[int, int] = {}
        self._box = None
        if cgroups.hierarchy() is not None:
            memory = (limits.memory_mb + limits.disk_mb) * 2**20  # the scratch tmpfs counts too
            self._box = cgroups.Box(memory, KERNEL_PIDS)
        # The student's folder as submitted (nbgrader's copy leaves out files its ignore list
        # names: the weight files the notebook loads), then nbgrader's own copy.
        inputs = [(str(s), "submitted") for s in [self._submitted_folder(resources)] if s]
        inputs.append((folder, "nbgrader"))
        watch = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(watch,), daemon=True)
        with tempfile.TemporaryDirectory(prefix="dlcourse-kernel-") as tmp:
            runtime, work = Path(tmp) / "rt", Path(tmp) / "work"
            runtime.mkdir()
            if self.unsandboxed:  # no sandbox, no tmpfs: a copy on the host is the cwd
                for host, _ in inputs:
                    submission.copy_regular_files(Path(host), work)
                resources["metadata"]["path"] = str(work)
            self._km_args = {
                "inputs": inputs, "runtime": str(runtime), "unsandboxed": self.unsandboxed,
                "work": str(work), "box": self._box, "disk_mb": limits.disk_mb,
            }  # fmt: skip
            watcher.start()
            try:
                return super().preprocess(nb, resources, km=km)
            finally:
                watch.set()
                watcher.join()
                if self._box is not None:
                    self._box.close()  # nothing of the student outlives the step
                resources["metadata"]["path"] = folder

    def _limits(self, resources: Any) -> Limits:
        from dlcourse.grading import spec

        assignment = resources.get("nbgrader", {}).get("assignment", "")
        course = CourseDirectory(config=self.config)
        tests = Path(self.tests_dir or Path(course.root) / "grader_tests" / assignment)
        if assignment and (tests / "assignment.toml").is_file():
            return spec.load(assignment, tests).limits
        return Limits()

    def _submitted_folder(self, resources: Any) -> Path | None:
        info = resources.get("nbgrader", {})
        if "student" not in info or "assignment" not in info:
            return None
        course = CourseDirectory(config=self.config)
        path = course.format_path(course.submitted_directory, info["student"], info["assignment"])
        return Path(path) if Path(path).is_dir() else None

    def create_kernel_manager(self) -> SandboxedKernelManager:
        self.km = SandboxedKernelManager(
            kernel_name=self.kernel_name or "python3", config=self.config, **self._km_args
        )
        return self.km

    def _watch(self, done: threading.Event) -> None:
        """Stop the kernel when its box's limits were hit (the kernel enforces them; a fork
        bomb held at the pids limit would otherwise sit until the cell's time limit)."""
        while not done.wait(WATCH_S):
            if self._box is not None and (cause := self._box.describe_death()):
                self._stop(cause)
                return

    def _stop(self, reason: str) -> None:
        if self._stopped is None:
            self._stopped = reason
        if self._box is not None:
            self._box.kill()
        elif getattr(self, "km", None) is not None and self.km.has_kernel:
            self.km.provisioner.process.kill()  # unboxed (no cgroup here): the kernel itself

    def output(self, outs: Any, msg: Any, display_id: Any, cell_index: int) -> Any:
        """Count each output's bytes before keeping it; past a limit, stop the kernel."""
        size = len(json.dumps(msg.get("content", {})))
        self._cell_bytes[cell_index] = self._cell_bytes.get(cell_index, 0) + size
        total = sum(self._cell_bytes.values())
        if self._stopped is not None:
            return None
        if self._cell_bytes[cell_index] > OUTPUT_CELL_BYTES or total > OUTPUT_NOTEBOOK_BYTES:
            self._stop(
                f"output limit: this cell's outputs passed {OUTPUT_CELL_BYTES >> 20} MB, or the "
                f"notebook's {OUTPUT_NOTEBOOK_BYTES >> 20} MB; the rest was dropped and the "
                "kernel stopped"
            )
            return None
        return super().output(outs, msg, display_id, cell_index)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> tuple[Any, Any]:
        if self._stopped is not None:
            if cell.cell_type == "code":
                cell.outputs = [
                    _error("NotRun", f"not run: the kernel was stopped ({self._stopped})")
                ]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, TimeoutError) as exc:
            self._stop(
                (self._box and self._box.describe_death())
                or (
                    "no output came after the cell: the kernel died, or one output was over "
                    f"{MAX_MESSAGE_BYTES >> 20} MB (dropped unread)"
                    if isinstance(exc, TimeoutError)
                    else f"the kernel died ({exc})"
                )
            )
        if self._stopped is not None and cell.cell_type == "code":
            cell.outputs.append(_error("KernelStopped", self._stopped))
        return cell, resources


def _error(name: str, text: str) -> Any:
    return new_output("error", ename=name, evalue=text, traceback=[f"{name}: {text}"])


class SaveAutoGrades(_SaveAutoGrades):
    """nbgrader's step, except that an autograder test cell is saved as 0, needing a grade."""

    def _add_score(self, cell: Any, resources: Any) -> None:
        if utils.is_solution(cell):
            super()._add_score(cell, resources)
            return
        grade = self.gradebook.find_grade(
            cell.metadata["nbgrader"]["grade_id"], self.notebook_id, self.assignment_id,
            self.student_id,
        )  # fmt: skip
        grade.auto_score = 0.0
        grade.needs_manual_grade = True  # until the isolated grader writes it (IsolatedGrades)
        self.gradebook.db.commit()


class IsolatedGrades(NbGraderPreprocessor):
    """Run grader_tests/<assignment> on the submitted folder; write its points to the gradebook."""

    unsandboxed = Bool(False, help="grade without bubblewrap (outputs say so)").tag(config=True)
    tests_dir = Unicode(
        "", help="hidden tests folder (default: <course root>/grader_tests/<assignment>)"
    ).tag(config=True)
    just_graded = Bool(
        False,
        help="results.json is this run's own (dlcourse autograde graded it a moment ago): "
        "use it even when a safety stop left it incomplete, rather than wait once more",
    ).tag(config=True)

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        from dlcourse.grading import gradebook, runner, spec

        info = resources["nbgrader"]
        assignment, student = info["assignment"], info["student"]
        course = CourseDirectory(config=self.config)
        tests = Path(self.tests_dir or Path(course.root) / "grader_tests" / assignment)
        if not (tests / "assignment.toml").is_file():
            self.log.warning(
                "%s: no hidden tests in %s; its test cells wait for a person", assignment, tests
            )
            return nb, resources
        s = spec.load(assignment, tests)
        if Path(s.notebook).stem != info["notebook"]:
            return nb, resources
        folder = Path(course.format_path(course.submitted_directory, student, assignment))
        out = Path(course.root) / "grades" / assignment / student
        graded = runner.grade_cached(folder, s, out, not self.unsandboxed, self.just_graded)
        # the grader's notes go to the comment box the formgrader shows first
        order = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if utils.is_solution(c)]
        marks, problems = gradebook.merge(
            info["db_url"], course.course_id, s, student, graded, order
        )
        for problem in problems:
            self.log.warning("%s: %s", student, problem)
        _annotate(nb, marks, graded)
        return nb, resources


def _annotate(nb: Any, marks: dict[str, CellMark], graded: GradingResults) -> None:
    """Each test cell's verdict from the isolated grader, as an output under the cell."""
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or gid not in marks:
            continue
        mark = marks[gid]
        lines = [f"Isolated grader: {mark.score:g} of {mark.max_score:g} points"]
        lines += [f"  {t.name}: {t.output.splitlines()[0]}" for t in graded.tests
                  if t.grade_cell == gid and t.outcome != "passed" and t.output]  # fmt: skip
        if mark.reason:
            lines.append(f"  waits for a person: {mark.reason}")
        cell.outputs.append(new_output("stream", name="stdout", text="\n".join(lines) + "\n"))
