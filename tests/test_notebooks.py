"""Every source notebook (instructor version) runs top to bottom in smoke mode, as CI requires.

The tutorials run in smoke mode under nbgrader instead (tests/test_tutorials.py): that run is
checked for errors and stderr the same way, so they are not executed twice.
"""

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from dlcourse import course

NOTEBOOKS = [nb for a in course.assignments() if a.tree != "tutorials" for nb in a.notebooks]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    # Run a copy so the outputs (weights, figures) never land in the source tree.
    shutil.copytree(path.parent, tmp_path / "nb", ignore=shutil.ignore_patterns("*.pt"))
    monkeypatch.setenv("DLCOURSE_SMOKE", "1")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(tmp_path / "nb" / path.name, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "nb")}},
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    stderr = [
        o.text
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr" and "Warning" not in o.text
    ]
    assert not stderr, f"{path.name} writes to stderr (zeroes nbgrader test cells): {stderr[:2]}"
