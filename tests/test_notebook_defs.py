import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse import notebook


def write(tmp_path, *sources, name="nb.ipynb"):
    cells = [new_markdown_cell("# title")] + [new_code_cell(s) for s in sources]
    path = tmp_path / name
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_keeps_definitions_and_drops_training_cells(tmp_path):
    path = write(
        tmp_path,
        "import math\nSIZE = 3 * 4\nH, (W, C) = 28, (28, 1)\nself.x = 5\nLR: float = 1e-3\n"
        "model = make()\nfor i in range(10**9): pass",
        "%matplotlib inline\n!nvidia-smi\n@staticmethod\ndef f(x):\n    return x + SIZE",
        "class A:\n    k = 2\nA().train_forever()",
        "def f(x):\n    return -x  # redefined later: the later one wins",
    )
    ns = notebook.load_trusted(path)
    assert ns["SIZE"] == 12 and ns["LR"] == 1e-3 and ns["A"].k == 2 and "math" in ns
    assert (ns["H"], ns["W"], ns["C"]) == (28, 28, 1)
    assert "model" not in ns
    assert ns["f"](1) == -1
    assert "return -x" in notebook.source_of(path, "f")


def test_cells_with_syntax_errors_are_reported_not_fatal(tmp_path):
    path = write(tmp_path, "def ok():\n    return 1", "def broken(:\n    pass")
    src, warnings = notebook.definitions(path)
    assert "def ok" in src and "broken" not in src
    assert warnings == ["nb.ipynb: cell In [2] has a syntax error (line 1)"]


def test_nbgrader_test_cells_are_skipped(tmp_path):
    path = write(tmp_path, "X = 1", "X = 2")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t"}
    nbformat.write(nb, path)
    assert notebook.load_trusted(path)["X"] == 1


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"cells": 3}'])
def test_unreadable_notebooks_name_the_file(tmp_path, content):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    with pytest.raises(notebook.NotebookError, match="sub.ipynb"):
        notebook.definitions(path)
    with pytest.raises(notebook.NotebookError, match="no such notebook"):
        notebook.definitions(tmp_path / "missing.ipynb")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("LOOKUP = " + repr("0123456789" * 1_001), "a literal of 10,010 characters"),
        ("LABELS = " + repr(list(range(1_001))), "a literal of 1,001 items"),
        (
            "def forward(x):\n    table = " + repr({i: i % 10 for i in range(2_000)}) + "\n",
            "a literal of 2,000 items",
        ),
    ],
)
def test_large_constants_are_refused_with_a_message(tmp_path, source, message):
    """A table of test-image hashes to labels is data, not model code: the grader refuses it,
    as a module constant or hidden in a function, and says where it is."""
    path = write(tmp_path, "import torch", source)
    where = r"nb.ipynb: cell In \[2\], line 1 holds "
    with pytest.raises(notebook.NotebookError, match=where + message):
        notebook.definitions(path)


def test_many_small_constants_are_refused_too(tmp_path):
    cells = [f"C{i} = {list(range(900))!r}" for i in range(200)]
    with pytest.raises(notebook.NotebookError, match="definitions hold .* characters"):
        notebook.definitions(write(tmp_path, *cells))


def test_constants_built_from_untaken_cells_are_left_out(tmp_path):
    """`x_test = fmnist.test.x` would only fail in the grader: `fmnist` is a data load."""
    path = write(
        tmp_path,
        "import torch.nn as nn\nfmnist = load()\nx_test = fmnist.test.x\n"
        "LATENT = 32\nHIDDEN = LATENT * 2\nACT = nn.ReLU\nLIMIT = max(1, 2)",
        "from math import *\nTAU = tau",
    )
    src, _ = notebook.definitions(path)
    assert "x_test" not in src and "fmnist" not in src and "LIMIT" not in src
    ns = notebook.load_trusted(path)
    assert (ns["HIDDEN"], ns["ACT"].__name__) == (64, "ReLU")
    assert ns["TAU"] > 6.28  # a star import may define any name


def test_cells_are_named_by_the_prompt_the_student_sees(tmp_path):
    """In [n] as after Restart & Run All, and in nbgrader's feedback: empty code cells run
    nothing and get no number; text cells are found by the code cell above them."""
    cells = [new_markdown_cell("# title"), new_code_cell("x = 1"), new_code_cell("  "),
             new_markdown_cell("text"), new_code_cell("def broken(:")]  # fmt: skip
    assert notebook.prompts(cells) == [
        "the text cell at the top", "In [1]", "the empty cell after In [1]",
        "the text cell after In [1]", "In [2]",
    ]  # fmt: skip
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    assert notebook.definitions(path)[1] == ["nb.ipynb: cell In [2] has a syntax error (line 1)"]
