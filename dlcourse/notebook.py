"""Take the definitions out of a notebook, by name, without running its training cells.

Graders and reference scripts need a notebook's classes and functions, not its side effects:
students rename, reorder and split cells, and executing training cells would take hours. Only
imports, `def`, `class` and constant assignments are kept, in notebook order, so a later
definition replaces an earlier one exactly as it would when the notebook runs top to bottom.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat

_CONSTANT_NODES = (
    ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Name, ast.Load,
    ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Attribute,
)  # fmt: skip


class NotebookError(ValueError):
    """The file is not a readable notebook; the message names the file."""


def _is_constant(node: ast.AST) -> bool:
    return all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(node))


def _is_names(target: ast.expr) -> bool:
    """`x = ...` or `x, y = ...` (also nested): names only, no attributes or subscripts."""
    if isinstance(target, ast.Tuple | ast.List):
        return all(_is_names(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.AsyncFunctionDef):
        return True
    if isinstance(node, ast.Assign):
        return all(_is_names(t) for t in node.targets) and _is_constant(node.value)
    if isinstance(node, ast.AnnAssign):
        return (
            isinstance(node.target, ast.Name)
            and node.value is not None
            and _is_constant(node.value)
        )
    return False


def _without_magics(source: str) -> str:
    # IPython magics and shell escapes are not Python; blank them so line numbers stay right.
    return "\n".join("" if line.lstrip()[:1] in ("%", "!") else line for line in source.split("\n"))


def _is_test_cell(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def read(path: str | Path) -> Any:
    """The notebook as an nbformat node, or a NotebookError naming the file."""
    path = Path(path)
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such notebook; submit it under this name") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises many types for a broken file
        msg = f"{path} is not a readable notebook ({exc}); re-save it in Jupyter"
        raise NotebookError(msg) from exc


def definitions(path: str | Path) -> tuple[str, list[str]]:
    """Source of the notebook's definitions, plus one warning per code cell that does not parse."""
    nb = read(path)
    chunks, warnings = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _is_test_cell(cell):
            continue
        src = _without_magics(cell.source)
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            warnings.append(f"{Path(path).name}: cell {i} has a syntax error (line {exc.lineno})")
            continue
        lines = src.split("\n")
        for node in tree.body:
            if _keep(node):
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                chunks.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n\n".join(chunks) + "\n", warnings


def source_of(path: str | Path, name: str) -> str | None:
    """The last definition of `name` in the notebook (as it stands after a top-to-bottom run)."""
    src, _ = definitions(path)
    found = None
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            if node.name == name:
                found = ast.get_source_segment(src, node)
    return found


def load_trusted(path: str | Path) -> dict[str, Any]:
    """Execute a *trusted* notebook's definitions in this process (instructor notebooks only).

    Student notebooks never come here: the grader runs them in a sandboxed process.
    """
    src, _ = definitions(path)
    ns: dict[str, Any] = {"__name__": f"notebook_{Path(path).stem}"}
    exec(compile(src, str(path), "exec"), ns)  # noqa: S102 - trusted instructor source
    return ns
