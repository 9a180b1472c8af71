"""The public checks: grader_tests/ reduced to its `@public` tests and what they use.

`dlcourse validate` runs an assignment's @public tests (files, shapes, loading, limits) before
the deadline. For students to run it themselves, on their machine or in their repository's push
check, the kit ships the grading engine (its code is no secret: containment never depends on
hiding it) and this bundle, written into the kit's public_checks/ by `dlcourse student-kit`.

Only what the public tests need is carried over, decided on the syntax tree, not by hand: a
module without public tests is left out; in one with them, a top-level statement is kept only
when a kept statement uses a name it defines (a test's fixtures by parameter name, from the
module or the assignment's conftest.py), so hidden tests, their thresholds, their calibration
notes and whatever only they import stay behind. Kept statements are written back with
`ast.unparse`, which drops every comment, and each module's docstring is replaced by one saying
where it came from. A top-level statement that defines nothing (a call, an `if`) cannot be
judged that way and stops the build with its file and line, as does a conftest hook.

Every released assignment gets a folder, with at least its assignment.toml, so that
`dlcourse validate` (and the push check) knows each one; for those without @public tests it runs
the generic checks only (dlcourse/grading/validate.py).

`audit` then checks the written folder on its own terms: only assignment.toml, conftest.py and
test modules; every collected test @public and one of the source's public tests; every module
with a public test; no heldout.toml and no file holding the private test set's seed.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dlcourse import course

ALLOWED_FILES = ("assignment.toml", "conftest.py")
GENERATED = "Written by `dlcourse student-kit` (dlcourse/public_checks.py); do not edit."


class PublicChecksError(ValueError):
    """grader_tests/ cannot be reduced safely; the message names the file, the line, what to do."""


@dataclass(eq=False)
class _Statement:
    node: ast.stmt
    defines: set[str]
    uses: set[str]
    split_from: ast.stmt | None = None  # the import statement this alias came from


def _is_public(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in fn.decorator_list:
        if isinstance(d, ast.Name) and d.id == "public":
            return True
        if isinstance(d, ast.Attribute) and d.attr == "public":
            return True
    return False


def _is_test(node: ast.stmt) -> bool:
    """What pytest collects by its default names: test_* functions and Test* classes."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name.startswith("test")
    return isinstance(node, ast.ClassDef) and node.name.startswith("Test")


def _not_collected(tree: ast.Module) -> set[str]:
    """Names set `name.__test__ = False` at top level (helpers named test_*)."""
    off = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and _constant_false(node.value):
            for t in node.targets:
                if isinstance(t, ast.Attribute) and t.attr == "__test__":
                    if isinstance(t.value, ast.Name):
                        off.add(t.value.id)
    return off


def _constant_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_fixture(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute | ast.Name) and "fixture" in ast.unparse(target):
            return True
    return False


def _used_names(node: ast.AST) -> set[str]:
    """Every name `node` reads; for a test or a fixture also its parameters (the fixtures it
    asks pytest for). A probe's parameters are its arguments, not fixtures."""
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
        _is_test(node) or _is_fixture(node)
    ):
        a = node.args
        used.update(p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs])
    return used


def _statements(tree: ast.Module, path: Path) -> list[_Statement]:
    """The module's top-level statements with the names each defines and uses; imports split so
    that each alias is its own statement (an unused name is then dropped alone)."""
    found = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring: replaced by a generated one
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                found.append(_Statement(node, {"__future__"}, set()))
                continue
            for alias in node.names:
                one = type(node)(**{**vars(node), "names": [alias]})
                name = alias.asname or alias.name.split(".")[0]
                found.append(_Statement(ast.copy_location(one, node), {name}, set(), node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.append(_Statement(node, {node.name}, _used_names(node) - {node.name}))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defines = set()
            for t in targets:
                base = t
                while isinstance(base, ast.Attribute | ast.Subscript):
                    base = base.value  # `helper.__test__ = False` belongs to `helper`
                defines |= {n.id for n in ast.walk(base) if isinstance(n, ast.Name)}
            found.append(_Statement(node, defines, _used_names(node)))
        else:
            raise PublicChecksError(
                f"{path}:{node.lineno}: a top-level {type(node).__name__} statement defines no "
                "name, so the public checks cannot tell whether public tests need it; move it "
                "into a function or a fixture"
            )
    return found


def _closure(statements: list[_Statement], wanted: set[str]) -> tuple[list[_Statement], set[str]]:
    """The statements that define `wanted` and what they use, transitively; and the names
    still wanted that this module does not define (fixtures from conftest.py or the plugin)."""
    wanted = set(wanted)
    kept: list[_Statement] = []
    changed = True
    while changed:
        changed = False
        for st in statements:
            if st not in kept and st.defines & wanted:
                kept.append(st)
                wanted |= st.uses
                changed = True
    defined = set().union(*(st.defines for st in statements)) if statements else set()
    return [st for st in statements if st in kept], wanted - defined


def _write_module(kept: list[_Statement], origin: str) -> str:
    """The kept statements as source, the aliases kept from one import statement together."""
    nodes: list[ast.stmt] = []
    last_import: ast.stmt | None = None
    for st in kept:
        if st.split_from is not None and st.split_from is last_import:
            nodes[-1].names += st.node.names  # type: ignore[attr-defined]
            continue
        nodes.append(st.node)
        last_import = st.split_from
    doc = f'"""Public checks from {origin}.\n\n{GENERATED}\n"""\n\n'
    return doc + "\n\n".join(ast.unparse(n) for n in nodes) + "\n"


def public_tests(path: Path) -> list[str]:
    """Names of the @public test functions in a hidden-test module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test(n) and _is_public(n)
    ]


def reduce_assignment(src: Path, dest: Path) -> list[str]:
    """Write src's assignment.toml and public checks into dest (created); the names of the
    modules written (none for an assignment without @public tests)."""
    modules: dict[str, tuple[list[_Statement], list[str]]] = {}
    for path in sorted(src.glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        tests = public_tests(path)
        if tests:
            modules[path.name] = (_statements(tree, path), tests)
    dest.mkdir(parents=True)
    shutil.copy2(src / "assignment.toml", dest / "assignment.toml")
    if not modules:
        return []
    conftest_path = src / "conftest.py"
    conftest: list[_Statement] = []
    if conftest_path.is_file():
        tree = ast.parse(conftest_path.read_text(), filename=str(conftest_path))
        conftest = _statements(tree, conftest_path)
        hooks = [n for st in conftest for n in st.defines if n.startswith("pytest_")]
        if hooks:
            raise PublicChecksError(
                f"{conftest_path}: hook {hooks[0]} would change the public checks in ways the "
                "bundle cannot see; the public checks support fixtures only"
            )
    fixtures_wanted: set[str] = set()
    written = []
    for name, (statements, tests) in modules.items():
        keep = set(tests) | {"GRADE_CELL", "pytestmark", "__future__"}
        kept, outside = _closure(statements, keep)
        fixtures_wanted |= outside
        rel = f"grader_tests/{src.name}/{name}"
        (dest / name).write_text(_write_module(kept, rel))
        written.append(name)
    if conftest:
        kept, _ = _closure(conftest, fixtures_wanted | {"__future__"})
        if any(not isinstance(st.node, ast.Import | ast.ImportFrom) for st in kept):
            text = _write_module(kept, f"grader_tests/{src.name}/conftest.py")
            (dest / "conftest.py").write_text(text)
            written.append("conftest.py")
    return written


def build(
    dest: Path, assignments: list[str], source: Path = course.GRADER_TESTS
) -> dict[str, list[str]]:
    """public_checks/<assignment>/ for each of `assignments` (the released ones), so that
    `dlcourse validate` knows every one: its assignment.toml and its public checks, where it has
    @public tests; {name: modules written}. An assignment without grader tests gets an
    assignment.toml naming its release notebook (no weights, the default limits)."""
    dest.mkdir(parents=True)
    found = {}
    for name in assignments:
        if (source / name / "assignment.toml").is_file():
            found[name] = reduce_assignment(source / name, dest / name)
        else:
            (dest / name).mkdir()
            (dest / name / "assignment.toml").write_text(_generated_spec(name))
            found[name] = []
    return found


def _generated_spec(name: str) -> str:
    notebooks = sorted(p.name for p in (course.RELEASE / name).glob("*.ipynb"))
    if len(notebooks) != 1:
        raise PublicChecksError(
            f"{course.RELEASE / name} holds {len(notebooks)} notebooks and {name} has no "
            f"grader_tests/{name}/assignment.toml to say which is submitted: add one"
        )
    return f'# {GENERATED}\n# {name} has no grader tests.\nnotebook = "{notebooks[0]}"\n'


def _seed_text() -> str | None:
    from dlcourse.grading import heldout

    try:
        return str(heldout.seed())
    except (FileNotFoundError, ValueError):
        return None


def audit(folder: Path, source: Path = course.GRADER_TESTS) -> list[str]:
    """Every reason `folder` (public_checks/) must not be published; [] when it may be.

    Checked on the written files: what they may be, that every test pytest would collect is
    @public and public in `source`, that every public test of `source` is there, and that no
    file holds the seed. Missing public tests are a problem too: students would miss a check.
    """
    problems = []
    for origin in sorted(source.glob("*/test_*.py")):
        shipped = folder / origin.parent.name / origin.name
        for name in public_tests(origin):
            if not shipped.is_file() or name not in public_tests(shipped):
                problems.append(
                    f"{shipped.relative_to(folder.parent)} lacks the public test {name}"
                )
    seed = _seed_text()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder.parent)
        text = path.read_text(errors="replace")
        if seed and re.search(rf"(?<!\d){re.escape(seed)}(?!\d)", text):
            problems.append(f"{rel} holds the private test set's seed")
        if path.name == "heldout.toml":
            problems.append(f"{rel}: the private test set's seed file never ships")
            continue
        if len(path.relative_to(folder).parts) != 2 or not (
            path.name in ALLOWED_FILES or re.fullmatch(r"test_\w+\.py", path.name)
        ):
            problems.append(f"{rel} is not an assignment.toml, conftest.py or test module")
            continue
        if path.suffix == ".py":
            problems += _audit_module(path, rel, source / path.parent.name / path.name)
    return problems


def _audit_module(path: Path, rel: Path, origin: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        return [f"{rel} does not parse: {exc}"]
    problems = [
        f"{rel}:{n.lineno}: a relative import; public checks import only installed modules"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    if path.name == "conftest.py":
        return problems
    off = _not_collected(tree)
    collected = [n for n in tree.body if _is_test(n) and n.name not in off]
    problems += [
        f"{rel}: {n.name} is collected as a test and is not @public"
        for n in collected
        if not (isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and _is_public(n))
    ]
    names = {n.name for n in collected}
    if not names:
        problems.append(f"{rel} has no public test: such a module never ships")
    if origin.is_file():
        extra = names - set(public_tests(origin))
        problems += [f"{rel}: {n} is not a public test of {origin.name}" for n in sorted(extra)]
    return problems
