"""Take the definitions out of a notebook, by name, without running its training cells.

Graders and reference scripts need a notebook's classes and functions, not its side effects:
students rename, reorder and split cells, and executing training cells would take hours. Only
imports, `def`, `class` and constant assignments are kept, in notebook order, so a later
definition replaces an earlier one exactly as it would when the notebook runs top to bottom.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path
from typing import Any

import nbformat

_CONSTANT_NODES = (
    ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Name, ast.Load,
    ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Attribute,
)  # fmt: skip


# Definitions are model code, not data: a literal this large could only smuggle data in (a
# table of test-image hashes to labels, say), so the grader refuses it.
MAX_LITERAL_CHARS = 10_000  # one string or bytes literal
MAX_LITERAL_ITEMS = 1_000  # one list, tuple, set or dict display
MAX_DEFINITIONS_CHARS = 500_000  # everything taken from one notebook
# Code is parsed in the grader's own process: an 8 MB expression costs about 1.7 GB to parse, so
# a notebook's code is measured before any of it is parsed (outputs do not count).
MAX_CELL_CODE_CHARS = 100_000  # one code cell
MAX_CODE_CHARS = 1_000_000  # all code cells together


_BUILTINS = set(dir(builtins))


class NotebookError(ValueError):
    """The file is not a readable notebook; the message names the file."""


def _oversized_literal(node: ast.AST) -> str | None:
    """What is too large about the first oversized literal under `node`, or None."""
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str | bytes):
            if len(n.value) > MAX_LITERAL_CHARS:
                return f"a literal of {len(n.value):,} characters (at most {MAX_LITERAL_CHARS:,})"
        elif isinstance(n, ast.List | ast.Tuple | ast.Set | ast.Dict):
            items = len(n.keys) if isinstance(n, ast.Dict) else len(n.elts)
            if items > MAX_LITERAL_ITEMS:
                return f"a literal of {items:,} items (at most {MAX_LITERAL_ITEMS:,})"
    return None


def _is_constant(node: ast.AST) -> bool:
    return all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(node))


def _is_names(target: ast.expr) -> bool:
    """`x = ...` or `x, y = ...` (also nested): names only, no attributes or subscripts."""
    if isinstance(target, ast.Tuple | ast.List):
        return all(_is_names(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _binds(node: ast.stmt) -> set[str]:
    """The names a kept statement defines (a star import defines any name: "*")."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {a.asname or a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _keep(node: ast.stmt, defined: set[str]) -> bool:
    """Imports, functions, classes, and constants made of literals and names defined above.

    `x_test = fmnist.test.x` looks like a constant, but `fmnist` comes from a cell that is not
    taken (a data load): keeping it would only fail with a NameError in the grader's notes.
    """
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.AsyncFunctionDef):
        return True
    if isinstance(node, ast.Assign):
        ok = all(_is_names(t) for t in node.targets) and _is_constant(node.value)
    elif isinstance(node, ast.AnnAssign):
        ok = isinstance(node.target, ast.Name) and node.value is not None
        ok = ok and _is_constant(node.value)
    else:
        return False
    used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
    return ok and ("*" in defined or used <= defined | _BUILTINS)


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


def prompts(cells: list[Any]) -> list[str]:
    """How the student finds each cell: the prompt `In [n]` that a code cell shows after
    Restart & Run All and in nbgrader's feedback (n counts the code cells that are not empty:
    Jupyter and nbgrader run nothing in an empty one); a text cell by the code cell above it."""
    names, n = [], 0
    for cell in cells:
        filled = bool(cell.source.strip())
        if cell.cell_type == "code" and filled:
            n += 1
            names.append(f"In [{n}]")
        elif cell.cell_type == "code":
            names.append(f"the empty cell after In [{n}]" if n else "the empty cell at the top")
        else:
            names.append(f"the text cell after In [{n}]" if n else "the text cell at the top")
    return names


def code_cells(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, source without magics) of the code cells outside nbgrader's test cells, or a
    NotebookError naming the cell when there is more code than anyone writes by hand."""
    nb = read(path)
    found, total = [], 0
    names = prompts(nb.cells)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or _is_test_cell(cell):
            continue
        n = len(cell.source)
        total += n
        where = names[i]
        if n > MAX_CELL_CODE_CHARS or total > MAX_CODE_CHARS:
            what = (
                f"cell {where} holds {n:,} characters of code (at most {MAX_CELL_CODE_CHARS:,})"
                if n > MAX_CELL_CODE_CHARS
                else f"its code cells hold over {MAX_CODE_CHARS:,} characters (cell {where})"
            )
            raise NotebookError(
                f"{Path(path).name}: {what}; the grader refuses code that large: load data from "
                "a file instead of writing it into the notebook"
            )
        found.append((where, _without_magics(cell.source)))
    return found


def definitions(path: str | Path) -> tuple[str, list[str]]:
    """Source of the notebook's definitions, plus one warning per code cell that does not parse."""
    chunks, warnings = [], []
    defined: set[str] = set()
    for where, src in code_cells(path):
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            warnings.append(
                f"{Path(path).name}: cell {where} has a syntax error (line {exc.lineno})"
            )
            continue
        lines = src.split("\n")
        for node in tree.body:
            if _keep(node, defined):
                defined |= _binds(node)
                if too_large := _oversized_literal(node):
                    raise NotebookError(
                        f"{Path(path).name}: cell {where}, line {node.lineno} holds {too_large}; "
                        "the grader refuses large constants in definitions: load data from a file"
                    )
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                chunks.append("\n".join(lines[first - 1 : node.end_lineno]))
    source = "\n\n".join(chunks) + "\n"
    if len(source) > MAX_DEFINITIONS_CHARS:
        raise NotebookError(
            f"{Path(path).name}: its definitions hold {len(source):,} characters (at most "
            f"{MAX_DEFINITIONS_CHARS:,}); the grader refuses notebooks that embed data in code"
        )
    return source, warnings


def source_of(path: str | Path, name: str) -> str | None:
    """The last definition of `name` in the notebook (as it stands after a top-to-bottom run)."""
    return definition_in(definitions(path)[0], name)


def definition_in(source: str, name: str) -> str | None:
    """The last `def` or `class` called `name` in `source` (from `definitions`), or None."""
    found = None
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            if node.name == name:
                found = ast.get_source_segment(source, node)
    return found


class NotLiteral(ValueError):
    """A notebook assigns a name something the grader will not evaluate (a variable, a call)."""


_ARITHMETIC = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
}  # fmt: skip
_MAX_MAGNITUDE = 1e18  # `10 * 10 * ...` stays a number; no `**`, so nothing grows faster


def _literal(node: ast.expr) -> Any:
    """Numbers, strings, booleans, None, tuples and lists, and + - * / // % on numbers.

    `ast.literal_eval` refuses `3 * 16 * 9 + 16`, a natural way to answer a parameter count.
    """
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
        return node.value
    if isinstance(node, ast.Tuple | ast.List):
        values = [_literal(e) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        a, b = _literal(node.left), _literal(node.right)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
            try:
                value = _ARITHMETIC[type(node.op)](a, b)
            except ZeroDivisionError:
                raise NotLiteral("divides by 0") from None
            if abs(value) <= _MAX_MAGNITUDE:
                return value
    raise NotLiteral(f"`{ast.unparse(node)[:80]}` is not a number, text or tuple of those")


def literals(path: str | Path) -> dict[str, ast.expr]:
    """The expression last assigned to each top-level name outside nbgrader's test cells,
    parsed once: `Q1 = 3`, `Q1: int = 3`, `Q1 = Q2 = 3` and `Q7, Q8 = 3, 4` all count."""
    found: dict[str, ast.expr] = {}
    for _, src in code_cells(path):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                pairs = _pairs(node.target, node.value)
            elif isinstance(node, ast.Assign):
                pairs = [p for t in node.targets for p in _pairs(t, node.value)]
            else:
                continue
            found.update(pairs)
    return found


def _pairs(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    """(name, expression) for each name that `target = value` binds to a whole expression."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List):
        if len(target.elts) == len(value.elts) and not any(
            isinstance(e, ast.Starred) for e in [*target.elts, *value.elts]
        ):
            return [p for t, v in zip(target.elts, value.elts, strict=True) for p in _pairs(t, v)]
    return []


def literal_value(node: ast.expr | None) -> tuple[bool, Any]:
    """(found, value) of an expression from `literals`, evaluated from the syntax tree and
    never executed. NotLiteral when it is not a plain literal (`Q1 = x`, `Q1 = f()`), so the
    student is told to write the value itself."""
    if node is None:
        return False, None
    if too_large := _oversized_literal(node):
        raise NotLiteral(f"holds {too_large}")
    try:
        return True, _literal(node)
    except RecursionError:
        raise NotLiteral("is nested too deeply") from None


def literal_of(path: str | Path, name: str) -> tuple[bool, Any]:
    """(found, value) of the notebook's last top-level `name = ...` outside nbgrader test cells
    (a quiz answer, marked without running any of the student's code)."""
    return literal_value(literals(path).get(name))


def load_trusted(path: str | Path) -> dict[str, Any]:
    """Execute a *trusted* notebook's definitions in this process (instructor notebooks only).

    Student notebooks never come here: the grader runs them in a sandboxed process.
    """
    src, _ = definitions(path)
    ns: dict[str, Any] = {"__name__": f"notebook_{Path(path).stem}"}
    exec(compile(src, str(path), "exec"), ns)  # noqa: S102 - trusted instructor source
    return ns
