"""nbgrader steps that make plain `nbgrader autograde A` safe and complete.

nbgrader_config.py puts these into the Autograde converter's own pipelines, so the command the
teaching assistants know is the isolated one:

- `RejectSpecialFiles` (first sanitize step): a submission holding a symbolic link, a device or
  a pipe is refused with a message before any of it is graded.
- `DeduplicateIds`: nbgrader's, fixed so that a copied cell does not crash the restore of
  missing cells (nbgrader 0.9.6 empties the metadata and then reads its grade_id).
- `SandboxedExecute` (instead of nbgrader's Execute): the student's kernel runs in the
  bubblewrap sandbox on a scratch copy of the student's folder. It sees Python, the `dlcourse`
  package and the training data, nothing of the course (hidden tests, solutions, weights,
  gradebook, other students). The notebook client stays in the trusted process and talks to
  the kernel over Unix sockets, so the kernel cannot write its own outputs. When the kernel
  stops, its PID namespace ends: no process of the student outlives the step.
- `IsolatedGrades` (after SaveAutoGrades): the hidden tests of grader_tests/A run on the
  submitted folder in the isolated grader, and their points go into the gradebook cells named
  by GRADE_CELL, with the grader's notes (sandbox, copied weights) in a gradebook comment.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import DeduplicateIds as _DeduplicateIds
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Unicode

from dlcourse.grading import sandbox, submission

KERNEL_MOUNT = "/submission"
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


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel inside bubblewrap, reached over Unix sockets in a folder both sides see."""

    work = Unicode(help="scratch copy of the student's folder, the kernel's working directory")
    runtime = Unicode(help="folder of the connection file and the kernel's sockets")
    unsandboxed = Bool(False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.ip = str(Path(self.runtime) / "kernel")
        self.connection_file = str(Path(self.runtime) / "connection.json")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        limits = [
            "/usr/bin/prlimit", f"--as={KERNEL_AS_MB * 2**20}",
            f"--fsize={KERNEL_FILE_MB * 2**20}", "--core=0", "--",
        ]  # fmt: skip
        if self.unsandboxed:
            return [*limits, *cmd]
        binds = ("--bind", self.runtime, self.runtime)
        env = kernel_environment(self.runtime)
        data = _data_dir()
        if data is not None:  # the notebooks train on it; the private test set is not there
            binds += ("--ro-bind", str(data), str(data))
            env["DLCOURSE_DATA"] = str(data)
        args = sandbox.bwrap_args(Path(self.work), KERNEL_MOUNT, writable=True, binds=binds)
        args.append("--clearenv")
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, *limits, *cmd]


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
    """nbgrader's Execute with the kernel in the sandbox, on a scratch copy of the folder."""

    unsandboxed = Bool(
        False, help="run the kernel without bubblewrap (every output says NOT SANDBOXED)"
    ).tag(config=True)

    def preprocess(self, nb: Any, resources: Any, km: Any = None) -> tuple[Any, Any]:
        if not self.unsandboxed:
            sandbox.require_sandbox()
        folder = resources["metadata"]["path"]
        with tempfile.TemporaryDirectory(prefix="dlcourse-kernel-") as tmp:
            work, runtime = Path(tmp) / "work", Path(tmp) / "rt"
            runtime.mkdir()
            submission.copy_regular_files(Path(folder), work)
            self._dirs = (str(work), str(runtime))
            resources["metadata"]["path"] = str(work)  # the kernel's cwd, outside the sandbox
            try:
                return super().preprocess(nb, resources, km=km)
            finally:
                resources["metadata"]["path"] = folder

    def create_kernel_manager(self) -> SandboxedKernelManager:
        work, runtime = self._dirs
        self.km = SandboxedKernelManager(
            kernel_name=self.kernel_name or "python3",
            config=self.config,
            work=work,
            runtime=runtime,
            unsandboxed=self.unsandboxed,
        )
        return self.km


class IsolatedGrades(NbGraderPreprocessor):
    """Run grader_tests/<assignment> on the submitted folder; write its points to the gradebook."""

    unsandboxed = Bool(False, help="grade without bubblewrap (outputs say so)").tag(config=True)
    tests_dir = Unicode(
        "", help="hidden tests folder (default: <course root>/grader_tests/<assignment>)"
    ).tag(config=True)

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        from dlcourse.grading import gradebook, runner, spec

        info = resources["nbgrader"]
        assignment, student = info["assignment"], info["student"]
        course = CourseDirectory(config=self.config)
        tests = Path(self.tests_dir or Path(course.root) / "grader_tests" / assignment)
        if not (tests / "assignment.toml").is_file():
            return nb, resources  # an assignment without hidden tests: nothing to add
        s = spec.load(assignment, tests)
        if Path(s.notebook).stem != info["notebook"]:
            return nb, resources
        folder = Path(course.format_path(course.submitted_directory, student, assignment))
        out = Path(course.root) / "grades" / assignment / student
        graded = runner.grade_cached(folder, s, out, sandbox=not self.unsandboxed)
        for problem in gradebook.merge(info["db_url"], course.course_id, s, student, graded):
            self.log.warning("%s: %s", student, problem)
        return nb, resources
