"""The `student` fixture's object: hidden tests reach the student's code only through it."""

from __future__ import annotations

import functools
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dlcourse.grading import protocol, submission
from dlcourse.grading.sandbox import Worker, WorkerError
from dlcourse.grading.spec import Spec
from dlcourse.grading.worker import import_notebook

notebook = import_notebook()  # before anything else imports nbformat: see import_notebook


@functools.cache
def _probe_source(probe: Callable[..., Any]) -> str:
    """A probe's source, read once per grading (inspect re-reads and tokenizes the module)."""
    return textwrap.dedent(inspect.getsource(probe))


class StudentError(Exception):
    """The mark could not be computed because of the submission; the message says why."""


class Student:
    """One submission: definitions by name, weight files, and probes run in its worker."""

    def __init__(self, submission: Path, spec: Spec, sandbox: bool = True) -> None:
        self.path = Path(submission).resolve()
        self.spec = spec
        self.worker = Worker(
            self.path, spec.limits, sandbox, setup={"op": "load", "notebook": spec.notebook}
        )
        self.load_warnings: list[str] = []
        self.last_cpu_s = 0.0  # CPU seconds the last `run` cost the student process (measured here)
        self.load_error: str | None = None  # set once: every later probe fails the same way
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
            raise StudentError(f"while loading the notebook's definitions: {exc}") from None
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
            raise StudentError(f"{probe.__name__}: {exc}") from None
        self.timings["calls_s"] += reply.get("seconds", 0.0)
        self.last_cpu_s = self.worker.last_cpu_s
        if not reply["ok"]:
            raise StudentError(f"{probe.__name__}: {reply['error']}")
        return reply["value"]

    def source(self, name: str) -> str:
        """The notebook source of definition `name`, read here without running anything."""
        try:
            src = notebook.source_of(self._require_notebook(), name)
        except notebook.NotebookError as exc:  # name the file as the student knows it
            raise StudentError(str(exc).replace(f"{self.path}/", "")) from None
        if src is None:
            raise StudentError(f"the notebook defines no `{name}`; the grader finds it by name")
        return src

    def literal(self, name: str) -> tuple[bool, Any]:
        """(found, value) of the notebook's last `name = <literal>`, read here from the source
        without running anything: quiz answers need no student process. `notebook.NotLiteral`
        when the value is not a number, text or tuple."""
        try:
            return notebook.literal_of(self._require_notebook(), name)
        except notebook.NotebookError as exc:
            raise StudentError(str(exc).replace(f"{self.path}/", "")) from None

    def state_dict(self, file: str) -> dict[str, torch.Tensor]:
        """A weight file loaded here with `weights_only=True`; must be a dict of tensors."""
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
        return sd

    def close(self) -> None:
        self.worker.cleanup()
