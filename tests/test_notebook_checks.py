"""The notebooks' self-checks tell a student what went wrong.

1. Every blank student release runs top to bottom in smoke mode (errors allowed: the exercises raise
   NotImplementedError) and no cell ends in an exception without a message, such as a bare
   `AssertionError`.
2. Typical mistakes, injected into the instructor notebook's solution, make the matching check cell
   fail with a message that names the measured and the expected values. Only the setup cell, the
   exercise and its check cell are executed, so each case takes a few seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_notebook

from dlcourse import course

ROOT = Path(course.__file__).resolve().parent.parent
RELEASES = ["pytorch_intro_1", "pytorch_intro_2", "cw1", "cw2"]
INTRO_1 = ROOT / "notebooks" / "pytorch_intro_1" / "pytorch_intro_1.ipynb"
CW1 = ROOT / "source" / "cw1" / "cw1.ipynb"


@pytest.fixture
def smoke_env(monkeypatch):
    monkeypatch.setenv("DLCOURSE_SMOKE", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell, whatever fails, in `cwd`; the outputs are kept in `nb`."""
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return nb


def errors(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def silent_failures(nb: nbformat.NotebookNode) -> list[str]:
    """Cells whose exception has no message (a blank exercise's NotImplementedError is fine)."""
    return [
        f"cell {i}: {e.ename} with no message\n{''.join(cell.source)[:300]}"
        for i, cell in enumerate(nb.cells)
        for e in errors(cell)
        if not e.evalue.strip() and e.ename != "NotImplementedError"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", RELEASES)
def test_blank_release_checks_always_say_why(name, tmp_path, smoke_env):
    shutil.copytree(course.RELEASE / name, tmp_path / name)
    path = tmp_path / name / f"{name}.ipynb"
    nb = execute(nbformat.read(path, as_version=4), path.parent)
    assert not silent_failures(nb), "\n\n".join(silent_failures(nb))
    failed_checks = [e.evalue for c in nb.cells for e in errors(c) if e.ename == "AssertionError"]
    assert all(v.startswith("FAIL ") for v in failed_checks), failed_checks


def cell_by_id(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell


def setup_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.cell_type == "code" and "device.get_device()" in c.source)


def run_with_mistake(
    path: Path, exercise: str, check_cell: str, edits: list[tuple[str, str]], cwd: Path
) -> str:
    """The check cell's error message after `edits` (old, new) in the exercise's solution."""
    source = nbformat.read(path, as_version=4)
    cell = cell_by_id(source, exercise)
    for old, new in edits:
        assert old in cell.source, f"{exercise} no longer contains {old!r}: update this test"
        cell.source = cell.source.replace(old, new)
    cells = [setup_cell(source), cell, cell_by_id(source, check_cell)]
    nb = execute(new_notebook(cells=cells, metadata=source.metadata), cwd)
    assert not errors(nb.cells[0]) and not errors(nb.cells[1]), "the set-up or the exercise failed"
    (error,) = errors(nb.cells[2])
    assert error.ename == "AssertionError", f"{error.ename}: {error.evalue}"
    return error.evalue


MISTAKES = {
    "intro1 MLP ends in softmax": (
        INTRO_1, "intro1_mlp", "intro1_mlp_test",
        [("return self.net(x)", "return torch.softmax(self.net(x), dim=1)")],
        ["logits, not softmax probabilities", "row sums [1.0, 1.0, 1.0, 1.0]"],
    ),
    "cw1 BatchNorm2d running variance biased": (
        CW1, "cw1_batchnorm", "cw1_batchnorm_check",
        [("unbiased = var * count / max(count - 1, 1)", "unbiased = var")],
        ["running_var after one step"],
    ),
    "cw1 Linear weight stored transposed": (
        CW1, "cw1_linear", "cw1_linear_check",
        [("torch.zeros(out_channels, in_channels)", "torch.zeros(in_channels, out_channels)"),
         ("x @ self.w.T", "x @ self.w")],
        ["Linear(3, 1).w", "measured (3, 1), expected (1, 3)"],
    ),
    "cw1 Conv2d kernel flipped": (
        CW1, "cw1_conv2d", "cw1_conv2d_check",
        [("self.w.reshape(self.out_channels, -1)",
          "self.w.flip(2, 3).reshape(self.out_channels, -1)")],
        ["by hand", "expected [28, 38, 58, 68]"],
    ),
    "cw1 MaxPool2d unfold read position-major": (
        CW1, "cw1_maxpool", "cw1_maxpool_check",
        [("cols.reshape(n, c, kh * kw, -1).amax(dim=2)",
          "cols.reshape(n, kh * kw, c, -1).amax(dim=1)")],
        ["vs nn.MaxPool2d", "at index"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_injected_mistake_fails_with_measured_and_expected(mistake, tmp_path, smoke_env):
    path, exercise, check_cell, edits, must_name = MISTAKES[mistake]
    message = run_with_mistake(path, exercise, check_cell, edits, tmp_path)
    assert message.startswith("FAIL ") and "measured" in message and "expected" in message, message
    for text in must_name:
        assert text in message, f"{text!r} not in {message!r}"


def test_silent_failures_flags_a_bare_assertion_only():
    from nbformat.v4 import new_code_cell, new_output

    def failing(ename: str, evalue: str) -> nbformat.NotebookNode:
        cell = new_code_cell("...")
        cell.outputs = [new_output("error", ename=ename, evalue=evalue, traceback=[])]
        return cell

    nb = new_notebook(
        cells=[
            failing("NotImplementedError", ""),
            failing("AssertionError", "FAIL x: measured 1, expected 2"),
            failing("AssertionError", ""),
        ]
    )
    assert [s.split(":")[0] for s in silent_failures(nb)] == ["cell 2"]
