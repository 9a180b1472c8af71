"""The `student` fixture's object: hidden tests reach the student's code only through it."""

from __future__ import annotations

import functools
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlcourse.grading import MarkWithheld, protocol, provenance, submission
from dlcourse.grading.sandbox import Worker, WorkerError
from dlcourse.grading.spec import Spec
from dlcourse.grading.worker import import_notebook

notebook = import_notebook()  # before anything else imports nbformat: see import_notebook


@functools.cache
def _probe_source(probe: Callable[..., Any]) -> str:
    """A probe's source, read once per grading (inspect re-reads and tokenizes the module)."""
    return textwrap.dedent(inspect.getsource(probe))


class StudentError(Exception):
    """The mark could not be computed; the message says why. `safety_stop`: a wall-clock
    safety limit stopped it (grade again), otherwise the submission was at fault."""

    def __init__(self, message: str, safety_stop: bool = False) -> None:
        super().__init__(message)
        self.safety_stop = safety_stop


class Student:
    """One submission: definitions by name, weight files, and probes run in its worker."""

    def __init__(self, submission: Path, spec: Spec, sandbox: bool = True) -> None:
        self.path = Path(submission).resolve()
        self.spec = spec
        self.worker = Worker(
            self.path,
            spec.limits,
            sandbox,
            setup={"op": "load", "notebook": spec.notebook},
            files=(spec.notebook, *spec.weights),  # nothing else of the folder: no side tables
        )
        self.load_warnings: list[str] = []
        self.last_cpu_s = 0.0  # CPU seconds the last `run` cost the student process (measured here)
        self.load_error: str | None = None  # set once: every later probe fails the same way
        self._parsed: dict[str, Any] = {}  # the notebook read in this process, once per grading
        self.provenance: dict[str, list[provenance.Match]] = {}  # weight file -> course files
        self.timings: dict[str, float] = {"start_s": 0.0, "load_s": 0.0, "calls_s": 0.0}

    def _require_notebook(self) -> Path:
        nb = self.path / self.spec.notebook
        if not nb.is_file():
            raise StudentError(f"missing {self.spec.notebook}: submit the notebook under this name")
        try:
            submission.check_notebook_size(nb)
        except submission.SubmissionRejected as exc:
            raise StudentError(str(exc)) from None
        return nb

    def _ensure_started(self) -> None:
        if self.load_error is not None:
            raise StudentError(self.load_error)
        if self.worker.proc is not None and self.worker.proc.poll() is None:
            return
        self._require_notebook()
        try:
            self.worker.start()
        except WorkerError as exc:
            raise StudentError(
                f"while loading the notebook's definitions: {exc}", exc.safety_stop
            ) from None
        reply = self.worker.setup_reply
        self.timings["start_s"] += self.worker.start_seconds
        self.timings["load_s"] += reply.get("seconds", 0.0) if reply else 0.0
        if reply is None or not reply["ok"]:
            error = reply["error"] if reply else "no reply"
            self.load_error = f"the notebook's definitions could not be loaded: {error}"
            self.worker.close()
            raise StudentError(self.load_error)
        self.load_warnings = [str(w) for w in reply["value"]["warnings"]]

    def run(self, probe: Callable[..., Any], **kwargs: Any) -> Any:
        """`probe(ns, **kwargs)` computed in the student process (see grader_tests/README.md)."""
        self._ensure_started()
        source = _probe_source(probe)
        message = {"op": "call", "source": source, "name": probe.__name__, "kwargs": kwargs}
        try:
            reply = self.worker.request(message)
        except WorkerError as exc:
            raise StudentError(f"{probe.__name__}: {exc}", exc.safety_stop) from None
        self.timings["calls_s"] += reply.get("seconds", 0.0)
        self.last_cpu_s = self.worker.last_cpu_s
        if not reply["ok"]:
            raise StudentError(f"{probe.__name__}: {reply['error']}")
        return reply["value"]

    def _parse(self, what: str, read: Callable[[Path], Any]) -> Any:
        """`read(notebook)` once per grading (a quiz asks for a dozen answers): its result, or
        the same StudentError every time, naming the file as the student knows it."""
        if what not in self._parsed:
            try:
                self._parsed[what] = read(self._require_notebook())
            except (notebook.NotebookError, StudentError) as exc:
                self._parsed[what] = StudentError(str(exc).replace(f"{self.path}/", ""))
        if isinstance(self._parsed[what], StudentError):
            raise self._parsed[what]
        return self._parsed[what]

    def source(self, name: str) -> str:
        """The notebook source of definition `name`, read here without running anything."""
        src, _ = self._parse("definitions", notebook.definitions)
        found = notebook.definition_in(src, name)
        if found is None:
            raise StudentError(f"the notebook defines no `{name}`; the grader finds it by name")
        return found

    def literal(self, name: str) -> tuple[bool, Any]:
        """(found, value) of the notebook's last `name = <literal>` (also `Q7, Q8 = 3, 4`),
        read here from the source without running anything: quiz answers need no student
        process. `notebook.NotLiteral` when the value is not a number, text or tuple."""
        return notebook.literal_value(self._parse("literals", notebook.literals).get(name))

    def state_dict(self, file: str) -> dict[str, torch.Tensor]:
        """A weight file loaded here with `weights_only=True`: a dict of floating-point tensors.

        An integer, bool or complex tensor holds 1 to 16 bytes of anything per number, so it
        is refused (a table of test images packed into int64s, say); batch-norm's one-number
        `num_batches_tracked` counters are the exception PyTorch makes itself.
        """
        path = self.path / file
        if not path.is_file():
            raise StudentError(f"missing weight file {file}: save it next to the notebook")
        try:  # bounded before reading: a small file can unpack into gigabytes
            submission.check_weights_size(path)
        except submission.SubmissionRejected as exc:
            raise StudentError(str(exc)) from None
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - every load failure gets the same advice
            raise StudentError(
                f"{file} cannot be loaded with torch.load(weights_only=True) "
                f"({protocol.brief(exc)}); save it with torch.save(model.state_dict(), ...)"
            ) from None
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise StudentError(f"{file} is not a state_dict (a dict of tensors)")
        for key, t in sd.items():
            counter = str(key).endswith("num_batches_tracked") and t.numel() == 1
            if not (t.is_floating_point() or counter):
                raise StudentError(
                    f"{file}: tensor {key!s} of shape {tuple(t.shape)} holds "
                    f"{str(t.dtype).removeprefix('torch.')} numbers; graded weights must be "
                    "floating point (save the model's own state_dict)"
                )
        return sd

    def own_weights(self, file: str) -> None:
        """MarkWithheld when the weight file is, or holds the values of, course weights that
        students have (dlcourse.grading.provenance): the marks such a file would earn
        (accuracy, sample quality) are for a person to decide. Every match is a staff FLAG."""
        shipped = [m.course_file for m in self.matches(file, self.state_dict(file)) if m.shipped]
        if shipped:
            raise MarkWithheld(
                f"{file} holds the course's own weights (weights/{shipped[0]}), not weights "
                "you trained: the marks it would earn are left for the course staff to decide"
            )

    def matches(self, file: str, sd: dict[str, torch.Tensor] | None) -> list[provenance.Match]:
        """The course files a weight file is or holds, computed once per grading."""
        if file not in self.provenance:
            self.provenance[file] = provenance.file_matches(self.path / file, sd)
        return self.provenance[file]

    def weight_bytes(self, file: str) -> int:
        """The bytes of every tensor in a weight file (element size x count, all dtypes)."""
        return sum(t.element_size() * t.numel() for t in self.state_dict(file).values())

    def close(self) -> None:
        self.worker.cleanup()
