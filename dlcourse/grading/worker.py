"""The student process: builds the notebook's definitions and answers probe calls.

Started by `dlcourse.sandbox.Worker` as `python -m dlcourse.grading.worker IN_FD OUT_FD`, under
bubblewrap where it works. Everything here is untrusted territory: the student's code may patch
torch, numpy or this module. The grader therefore trusts nothing it gets back beyond what
`torch.load(weights_only=True)` accepts, and computes every metric itself.
"""

from __future__ import annotations

import ast
import linecache
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse.grading import protocol

PRINT_CAP_BYTES = 64 * 1024
# jsonschema (which nbformat imports) imports this, when installed (Jupyter brings it), only to
# check "iri" strings: building its lark grammar costs 1.5 CPU seconds in every grader and every
# student process, for a format nbformat's schema never uses.
IRI_CHECKER = "rfc3987_syntax"


class CappedStream:
    """A text stream that keeps the first PRINT_CAP_BYTES and drops the rest."""

    def __init__(self, fd: int) -> None:
        self._fd, self._written = fd, 0

    def write(self, s: str) -> int:
        data = str(s).encode("utf-8", "replace")
        room = PRINT_CAP_BYTES - self._written
        if room > 0:
            try:
                os.write(self._fd, data[:room])
            except OSError:
                pass  # the file-size limit was reached by lower-level writes; drop quietly
            self._written += min(room, len(data))
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd


class StudentFailure(Exception):
    """A message for the student's feedback (missing name, bad weights...)."""


class Namespace:
    """What a probe sees as `ns`: the notebook's definitions, found by name."""

    def __init__(self, names: dict[str, Any]) -> None:
        self._names = names
        self._models: dict[tuple, Any] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise StudentFailure(
                f"the notebook defines no `{name}`; the grader finds it by this exact name"
            )
        return self._names[name]

    def load_model(self, cls_name: str, file: str, *args: Any, **kwargs: Any) -> Any:
        """Build `cls_name(*args, **kwargs)`, load `file` strictly, eval mode; cached."""
        key = (cls_name, file, repr(args), repr(sorted(kwargs.items())))
        if key not in self._models:
            self._models[key] = _load_model(self[cls_name], cls_name, file, args, kwargs)
        return self._models[key]


def _load_model(cls: Any, cls_name: str, file: str, args: tuple, kwargs: dict) -> Any:
    path = Path(file)
    if not path.is_file():
        raise StudentFailure(f"missing weight file {file}: save it next to the notebook")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every load failure gets the same advice
        raise StudentFailure(
            f"{file} cannot be loaded with torch.load(weights_only=True) ({protocol.brief(exc)}); "
            "save it with torch.save(model.state_dict(), ...)"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise StudentFailure(
            f"{file} holds a {type(sd).__name__}, not a state_dict (a dict of tensors); "
            "save it with torch.save(model.state_dict(), ...)"
        )
    model = cls(*args, **kwargs)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:600]
        raise StudentFailure(f"{file} does not fit {cls_name}: {detail}") from None
    return model.eval()


def import_notebook() -> Any:
    """`dlcourse.notebook` (and nbformat), imported without jsonschema's IRI format checker.

    The checker is kept out only while nbformat is imported for the first time; code that
    imports it afterwards, a student's notebook included, gets it as usual.
    """
    if "nbformat" not in sys.modules and IRI_CHECKER not in sys.modules:
        sys.modules[IRI_CHECKER] = None  # type: ignore[assignment] - makes its import fail
        try:
            import nbformat  # noqa: F401
        finally:
            if sys.modules.get(IRI_CHECKER, 0) is None:
                del sys.modules[IRI_CHECKER]
    from dlcourse import notebook

    return notebook


def notebook_filename(notebook: str) -> str:
    """The file name student code is compiled under (tracebacks show the definitions' lines)."""
    return f"<definitions of {notebook}>"


def load_definitions(notebook: str) -> tuple[dict[str, Any], list[str]]:
    """Run the notebook's definitions one statement at a time; failures become warnings."""
    nb = import_notebook()
    try:
        src, warnings = nb.definitions(notebook)
    except nb.NotebookError as exc:
        raise StudentFailure(str(exc)) from None
    names: dict[str, Any] = {"__name__": "__student__"}
    filename = notebook_filename(notebook)
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    for node in ast.parse(src).body:
        code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
        try:
            exec(code, names)  # noqa: S102 - student code, inside the sandbox
        except Exception as exc:  # noqa: BLE001 - one bad statement must not hide the rest
            what = ast.get_source_segment(src, node) or ""
            warnings.append(
                f"line {node.lineno} ({what.splitlines()[0][:60]!r}) raised "
                f"{type(exc).__name__}: {exc}"
            )
    return names, warnings


def plain(obj: Any, path: str = "result") -> Any:
    """A copy of `obj` made only of types the grader accepts, or a StudentFailure."""
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone().as_subclass(torch.Tensor)
    if isinstance(obj, np.ndarray | np.generic):
        return torch.as_tensor(np.array(obj)) if isinstance(obj, np.ndarray) else obj.item()
    for base in (bool, int, float, str):  # subclasses: keep the plain value only
        if isinstance(obj, base):
            return base(obj)
    if type(obj) in (list, tuple):
        return type(obj)(plain(v, f"{path}[{i}]") for i, v in enumerate(obj))
    if type(obj) is dict:
        return {str(k): plain(v, f"{path}[{k!r}]") for k, v in obj.items()}
    raise StudentFailure(f"{path} is a {type(obj).__name__}, which the grader cannot accept")


def _student_traceback(exc: BaseException, notebook: str) -> str:
    filename = notebook_filename(notebook)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    where = "".join(f"  line {f.lineno} in {f.name}: {f.line}\n" for f in frames[-3:])
    return f"{type(exc).__name__}: {exc}\n{where}".strip()


def serve(fd_in: int, fd_out: int) -> None:
    ns: Namespace | None = None
    notebook = ""
    while True:
        start = time.perf_counter()
        try:
            req = protocol.read_message(fd_in)
        except EOFError:
            return
        except protocol.ProtocolError as exc:  # a grader-side mistake: say so, keep serving
            protocol.write_message(fd_out, {"ok": False, "error": f"bad request: {exc}"})
            continue
        try:
            if req["op"] == "load":
                notebook = req["notebook"]
                names, warnings = load_definitions(notebook)
                ns = Namespace(names)
                value: Any = {
                    "warnings": warnings,
                    "names": sorted(k for k in names if k[0] != "_"),
                }
            elif req["op"] == "call":
                if ns is None:
                    raise StudentFailure("no notebook loaded")
                glb = {"torch": torch, "nn": nn, "F": F, "np": np, "math": math}
                exec(compile(req["source"], "<probe>", "exec"), glb)  # noqa: S102 - grader's probe
                value = plain(glb[req["name"]](ns, **req["kwargs"]))
            else:
                raise StudentFailure(f"unknown request {req['op']!r}")
            reply = {"ok": True, "value": value}
        except StudentFailure as exc:
            reply = {"ok": False, "error": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from students too
            reply = {"ok": False, "error": _student_traceback(exc, notebook)}
        reply["seconds"] = time.perf_counter() - start
        protocol.write_message(fd_out, reply)


def main() -> None:
    fd_in, fd_out = int(sys.argv[1]), int(sys.argv[2])
    sys.stdout = sys.__stdout__ = CappedStream(1)
    sys.stderr = sys.__stderr__ = CappedStream(2)
    torch.set_num_threads(int(os.environ.get("DLCOURSE_GRADE_THREADS", "1")))
    protocol.write_message(fd_out, {"ok": True, "value": "ready"})  # imports done
    serve(fd_in, fd_out)


if __name__ == "__main__":
    main()
