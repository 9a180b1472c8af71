"""The student kit: what students get, in a folder of its own (`dlcourse student-kit DIR`).

Cloning this repository would hand students every solution (notebooks/, tutorials/, source/),
the hidden tests (grader_tests/), the private test set's seed and the reference weights of the
assessed tasks. The kit holds only the generated student notebooks (release/), the
student-facing modules of `dlcourse` with a student-only CLI, the grading engine that
`dlcourse validate` needs with the public checks it runs (public_checks/, see
dlcourse/public_checks.py), the push check of the students' repositories (.gitlab-ci.yml and
ci/push-check.sh), gpu_check.py, constraints.txt, the course weights the notebooks load, its own
pyproject.toml and a student README.

The engine's code is no secret (containment never depends on hiding it); what must not ship is
data: hidden tests, solutions, reference weights, the seed. What is shipped is decided by
explicit lists, so that a new file is never published by accident: STAFF_ONLY names the parts
of `dlcourse` that stay here (every other module ships, so a new student module such as
`check.py` needs no change here), GRADING_ENGINE the only modules of dlcourse/grading that ship,
and COURSE_WEIGHTS the only weight files. The kit is built in a temporary folder beside DIR,
audited (no instructor folders, no solution or hidden-test markers, no reference weights, no
seed, only public tests, no import of anything the kit lacks) and only then renamed into place,
so a published kit is never half-written or leaky.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse import course, public_checks, release, weights

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "kit_template"

# Entries of dlcourse/ that never reach students, with the reason.
STAFF_ONLY: dict[str, str] = {
    "reference": "reference training scripts: they rebuild the solutions' models",
    "release.py": "generates releases from the instructor sources with nbgrader",
    "course.py": "paths of the instructor source trees and the hidden tests; the kit gets "
    "kit_template/course.py instead",
    "kit.py": "this builder",
    "public_checks.py": "reduces grader_tests/ to the kit's public checks",
    "kit_template": "templates of the kit's own files",
    "cli.py": "registers the staff commands; the kit gets kit_template/cli.py instead",
}
# Written from kit_template/ instead of the repository's module of the same name.
KIT_OWN_MODULES = ("cli.py", "course.py")

# The modules of dlcourse/grading that ship: what `dlcourse validate` runs (the pytest plugin,
# the sandboxed worker, the runner, results, the private set's stand-in). The rest (nbgrader
# autograding, the gradebook, reports, Slurm) is staff-only and needs staff-only packages.
GRADING_ENGINE = (
    "__init__.py", "cgroups.py", "commands.py", "compare.py", "grader_process.py", "heldout.py",
    "measurements.py", "plugin.py", "protocol.py", "provenance.py", "quiz.py", "results.py",
    "runner.py", "sandbox.py", "spec.py", "student.py", "submission.py", "unavailable.py",
    "validate.py", "worker.py",
)  # fmt: skip
# Functions of shipped modules whose (function-level) imports of staff-only modules never run in
# the kit: the staff commands its CLI does not register, the cohort reports `validate` never
# writes. Their names are checked to exist, so a rename does not silently widen this.
KIT_UNREACHABLE: dict[str, tuple[str, ...]] = {
    "dlcourse/grading/commands.py": ("add_subcommands", "cmd_grade", "cmd_autograde", "cmd_demo"),
    "dlcourse/grading/runner.py": ("grade_many", "finish_cohort"),
}
# The push check of a student's repository, from kit_template/: (template, path in the kit).
CI_FILES = (
    ("gitlab-ci.yml", ".gitlab-ci.yml"),
    ("push-check.sh", "ci/push-check.sh"),
    ("gitignore", ".gitignore"),
)
# sha256 of each release notebook, read by the kit's course.started(): started or not.
RELEASED_HASHES = "ci/released.sha256"

# The only weight files that ship: instruments the notebooks use, not answers to any task.
COURSE_WEIGHTS: dict[str, str] = weights.SHIPPED

# Instructor folders of the repository; none of them may appear in a kit.
INSTRUCTOR_DIRS = (*course.SOURCE_TREES, "grader_tests")

# Dependencies only the staff side needs (nbgrader, the sandbox, notebook execution in tests, the
# PostgreSQL gradebook), and what students need that the repository gets through nbgrader
# (Jupyter, batch execution).
STAFF_DEPENDENCIES = ("nbgrader", "nbclient", "jinja2", "psycopg2-binary")
STUDENT_EXTRA_DEPENDENCIES = ("jupyterlab", "nbconvert", "pytest")  # pytest: `dlcourse validate`
# The kit's Python floor: lower than the repository's (nbgrader, staff-only, needs 3.11);
# constraints.txt pins older releases for 3.10 where its newest pins need 3.11, and
# tests/test_pins.py resolves the kit's dependencies on each Python from 3.10 to 3.13.
KIT_REQUIRES_PYTHON = ">=3.10"


class KitError(RuntimeError):
    """The kit cannot be built or would leak; the message names the path and what to do."""


@dataclass
class KitSummary:
    """What was written, for the CLI's report."""

    path: Path
    assignments: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # assignments with @public tests


def assessed_weight_hashes() -> dict[str, str]:
    """sha256 -> repository path of every weight file that must not ship.

    That is every *.pt under weights/ except COURSE_WEIGHTS (the assessed tasks' reference
    weights and the released baselines a student could submit as they are), and every *.pt in the
    instructor folders (reference weights and training histories kept beside the sources).
    """
    found: dict[str, str] = {}
    candidates = [p for p in weights.WEIGHTS_DIR.glob("*.pt") if p.name not in COURSE_WEIGHTS]
    for d in INSTRUCTOR_DIRS:
        candidates += sorted((course.ROOT / d).rglob("*.pt"))
    for p in candidates:
        if p.is_file():
            found.setdefault(weights.sha256(p), str(p.relative_to(course.ROOT)))
    return found


def submitted_weight_names() -> set[str]:
    """Weight files students submit (grader_tests/*/assignment.toml): never shipped pre-trained."""
    names: set[str] = set()
    for toml in course.GRADER_TESTS.glob("*/assignment.toml"):
        names.update(tomllib.loads(toml.read_text()).get("weights", []))
    return names


def _student_modules() -> list[Path]:
    """Entries of dlcourse/ that ship as they are: everything but STAFF_ONLY, the grading
    package (only GRADING_ENGINE of it ships) and caches."""
    return sorted(
        p
        for p in PACKAGE_DIR.iterdir()
        if p.name not in STAFF_ONLY
        and p.name not in ("__pycache__", "grading")
        and not p.name.endswith(".pyc")
        and (p.is_file() or (p / "__init__.py").is_file())
    )


def _imports(
    tree: ast.Module, package: str = "", skip_functions: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """(module, name) for every `dlcourse` import in the tree, function-level ones included
    except in the top-level functions `skip_functions`; name is "" for `import dlcourse.x`.
    Relative imports are resolved from `package`, the importing module's package."""
    found: list[tuple[str, str]] = []
    nodes = [
        n
        for top in tree.body
        if not (isinstance(top, ast.FunctionDef) and top.name in skip_functions)
        for n in ast.walk(top)
    ]
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "dlcourse"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([module] if module else [])])
            if module.split(".")[0] == "dlcourse":
                found += [(module, a.name) for a in node.names]
    return found


def _kit_module(kit: Path, dotted: str) -> Path | None:
    """The file of module `dotted` in the kit (a module or a package's __init__), or None."""
    base = kit.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _missing_import(kit: Path, module: str, name: str) -> str | None:
    """What of `from module import name` (or `import module`) the kit lacks, or None."""
    path = _kit_module(kit, module)
    if path is None:
        return module
    if not name or _kit_module(kit, f"{module}.{name}") is not None:
        return None
    if path.name == "__init__.py" and name not in _top_level_names(path):
        return f"{module}.{name}"
    return None


def _notebook_code(path: Path) -> str:
    """The code cells of a notebook, IPython magics and shell lines dropped, as one module."""
    nb = json.loads(path.read_text())
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", []))
        src = "\n".join(
            line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            ast.parse(src)
        except SyntaxError:
            continue  # the kernel will say so; this check is about imports only
        cells.append(src)
    return "\n".join(cells)


def check_imports(kit: Path) -> list[str]:
    """Problems: a shipped module, a public check or a release notebook importing a `dlcourse`
    module (or a name of one) that the kit does not have.

    The kit's `dlcourse` would then fail with ModuleNotFoundError on a student's machine, while in
    the repository (where everything is there) nothing would show. Resolved against the kit's own
    files, so a staff-only module is caught whichever way it is imported.
    """
    problems = []
    sources = [(p, p.read_text()) for p in sorted((kit / "dlcourse").rglob("*.py"))]
    sources += [(p, p.read_text()) for p in sorted((kit / "public_checks").rglob("*.py"))]
    sources += [(p, _notebook_code(p)) for p in sorted((kit / "release").rglob("*.ipynb"))]
    for path, text in sources:
        rel = str(path.relative_to(kit))
        skip = KIT_UNREACHABLE.get(rel, ())
        tree = ast.parse(text)
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        problems += [
            f"{rel}: KIT_UNREACHABLE in dlcourse/kit.py names {f}(), which it does not define"
            for f in skip
            if f not in defined
        ]
        package = ".".join(path.relative_to(kit).parts[:-1])  # a module's or __init__'s package
        imports = _imports(tree, package, skip)
        missing = (_missing_import(kit, mod, name) for mod, name in imports)
        bad = sorted({m for m in missing if m})
        if bad:
            problems.append(
                f"{rel} imports {', '.join(bad)}, which the kit does not have (staff-only): move "
                "what students need into a student module, or drop the import"
            )
    return problems


def audit(kit: Path) -> list[str]:
    """Every reason the folder `kit` must not be published (empty list: it may be).

    Checked independently of how the kit was written: instructor folders, staff-only modules,
    solution or hidden-test markers in any file, any file equal to a reference weight file or
    holding the private test set's seed, public checks that are not only public, and imports of
    anything the kit lacks.
    """
    problems = [f"{d}/ is an instructor folder" for d in INSTRUCTOR_DIRS if (kit / d).exists()]
    problems += [
        f"dlcourse/{name} is staff-only ({why})"
        for name, why in STAFF_ONLY.items()
        if name not in KIT_OWN_MODULES and (kit / "dlcourse" / name).exists()
    ]
    for name in KIT_OWN_MODULES:
        shipped = kit / "dlcourse" / name
        if shipped.is_file() and shipped.read_bytes() != (TEMPLATE_DIR / name).read_bytes():
            problems.append(f"dlcourse/{name} is not the kit's own (kit_template/{name})")
    grading = kit / "dlcourse" / "grading"
    if grading.is_dir():
        problems += [
            f"dlcourse/grading/{p.name} is staff-only (not in GRADING_ENGINE in dlcourse/kit.py)"
            for p in sorted(grading.iterdir())
            if p.name not in GRADING_ENGINE and p.name != "__pycache__"
        ]
    forbidden = assessed_weight_hashes()
    markers = [m.encode() for m in release.LEAK_MARKERS]
    seed = _seed_pattern()
    for path in sorted(p for p in kit.rglob("*") if p.is_file()):
        rel = path.relative_to(kit)
        data = path.read_bytes()
        if any(m in data for m in markers):
            problems.append(f"{rel} contains a solution or hidden-test marker")
        if (sha := weights.sha256(path)) in forbidden:
            problems.append(f"{rel} is a copy of the reference weights {forbidden[sha]}")
        if seed is not None and path.suffix not in (".pt", ".pth") and seed.search(data):
            problems.append(f"{rel} holds the private test set's seed (grader_tests/heldout.toml)")
    if (kit / "public_checks").is_dir():
        problems += public_checks.audit(kit / "public_checks")
    return problems + check_imports(kit)


def _seed_pattern() -> re.Pattern[bytes] | None:
    """The private test set's seed as a whole number, or None where this checkout has none."""
    from dlcourse.grading import heldout

    try:
        return re.compile(rb"(?<!\d)%d(?!\d)" % heldout.seed())
    except (FileNotFoundError, ValueError):
        return None


def _copy_release(kit: Path) -> list[str]:
    """release/<assignment>/ for every assignment; refuses a missing release or a weight file."""
    missing = [a.name for a in course.assignments() if not (course.RELEASE / a.name).is_dir()]
    if missing:
        raise KitError(
            f"no student version of {', '.join(missing)} in {course.RELEASE}: "
            f"run `dlcourse release {' '.join(missing)}` first"
        )
    names = []
    for src in sorted(d for d in course.RELEASE.iterdir() if d.is_dir()):
        if not any(src.glob("*.ipynb")):
            continue
        weight_files = sorted(src.rglob("*.pt")) + sorted(src.rglob("*.pth"))
        if weight_files:
            raise KitError(
                f"{weight_files[0]} is a weight file in a release folder: weights reach students "
                "only through COURSE_WEIGHTS in dlcourse/kit.py; remove it from the release"
            )
        ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
        shutil.copytree(src, kit / "release" / src.name, ignore=ignore)
        names.append(src.name)
    return names


def _copy_package(kit: Path) -> list[str]:
    """The student modules of dlcourse, the grading engine, and the kit's own cli.py and
    course.py."""
    dest = kit / "dlcourse"
    dest.mkdir()
    shipped = []
    for src in _student_modules():
        if src.is_dir():
            shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / src.name)
        shipped.append(src.name)
    (dest / "grading").mkdir()
    for name in GRADING_ENGINE:
        shutil.copy2(PACKAGE_DIR / "grading" / name, dest / "grading" / name)
    for name in KIT_OWN_MODULES:
        shutil.copy2(TEMPLATE_DIR / name, dest / name)
    return sorted([*shipped, "grading", *KIT_OWN_MODULES])


def _copy_ci(kit: Path, assignments: list[str]) -> None:
    """The push check (kit_template/), and the sha256 of each release notebook, by which it
    tells an assignment a student has started from one still as released."""
    for template, where in CI_FILES:
        dest = kit / where
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / template, dest)
        if dest.suffix == ".sh":
            dest.chmod(0o755)
    lines = [
        f"{weights.sha256(nb)}  {nb.relative_to(kit).as_posix()}\n"
        for a in assignments
        for nb in sorted((kit / "release" / a).glob("*.ipynb"))
    ]
    (kit / RELEASED_HASHES).write_text("".join(lines))


def _copy_weights(kit: Path) -> list[str]:
    """COURSE_WEIGHTS and a manifest holding only their entries (dlcourse.weights checks them)."""
    submitted = submitted_weight_names() & set(COURSE_WEIGHTS)
    if submitted:
        raise KitError(
            f"COURSE_WEIGHTS in {__file__} lists {', '.join(sorted(submitted))}, which students "
            "submit (grader_tests/*/assignment.toml): remove it from COURSE_WEIGHTS"
        )
    entries = weights.manifest()
    dest = kit / "weights"
    dest.mkdir()
    shipped = {}
    for name in sorted(COURSE_WEIGHTS):
        src = weights.WEIGHTS_DIR / name
        if not src.is_file() or name not in entries:
            raise KitError(
                f"{src} is missing or not in {weights.MANIFEST}: restore it from git or retrain "
                "it (see its manifest command) before building the kit"
            )
        if weights.sha256(src) != entries[name]["sha256"]:
            raise KitError(f"{src} does not match its sha256 in {weights.MANIFEST}; restore it")
        shutil.copy2(src, dest / name)
        shipped[name] = entries[name]
    text = json.dumps({"files": shipped}, indent=2) + "\n"
    (dest / "manifest.json").write_text(text)
    return sorted(shipped)


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def kit_pyproject() -> str:
    """The kit's pyproject.toml: the repository's dependencies minus the staff-only ones.

    Derived from the repository's pyproject.toml, so version bounds never drift apart; the exact
    versions come from constraints.txt as in the repository.
    """
    project = tomllib.loads((course.ROOT / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if _requirement_name(d) not in STAFF_DEPENDENCIES]
    names = {_requirement_name(d) for d in deps}
    deps += [d for d in STUDENT_EXTRA_DEPENDENCIES if d not in names]
    dep_lines = "".join(f"    {json.dumps(d)},\n" for d in deps)
    return (
        "# The student kit of the deep-learning course, written by `dlcourse student-kit`.\n"
        "# Install in place: pip install -c constraints.txt -e .\n"
        "[build-system]\n"
        'requires = ["setuptools>=68"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f"name = {json.dumps(project['name'])}\n"
        f"version = {json.dumps(project['version'])}\n"
        'description = "Student kit of the deep-learning course: notebooks and helper package"\n'
        'readme = "README.md"\n'
        f"requires-python = {json.dumps(KIT_REQUIRES_PYTHON)}\n"
        f"dependencies = [\n{dep_lines}]\n\n"
        "[project.scripts]\n"
        'dlcourse = "dlcourse.cli:main"\n\n'
        "[tool.setuptools]\n"
        'py-modules = ["gpu_check"]\n\n'
        "[tool.setuptools.packages.find]\n"
        'include = ["dlcourse*"]\n'
    )


def _assignments_table(names: list[str]) -> str:
    """What to submit per assignment, from grader_tests/*/assignment.toml (names only)."""
    rows = ["| assignment | notebook | weight files to submit with it |", "| --- | --- | --- |"]
    for name in names:
        spec = course.GRADER_TESTS / name / "assignment.toml"
        notebooks = sorted(p.name for p in (course.RELEASE / name).glob("*.ipynb"))
        nb = f"`release/{name}/{', '.join(notebooks)}`"
        if spec.is_file():
            files = tomllib.loads(spec.read_text()).get("weights", [])
            submit = ", ".join(f"`{f}`" for f in files) or "no weight files"
        else:
            submit = "no weight files"
        rows.append(f"| {name} | {nb} | {submit} |")
    return "\n".join(rows)


def _built_from() -> str:
    """A line naming the repository commit, so staff can tell which kit a student has."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(course.ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = proc.stdout.strip()
    return f"<sub>Kit built from the course repository at `{commit}`.</sub>\n" if commit else ""


def _write(kit: Path) -> KitSummary:
    summary = KitSummary(path=kit)
    summary.assignments = _copy_release(kit)
    summary.modules = _copy_package(kit)
    summary.weights = _copy_weights(kit)
    written = public_checks.build(kit / "public_checks", summary.assignments)
    summary.checks = [name for name, files in written.items() if files]
    _copy_ci(kit, summary.assignments)
    for name in ("gpu_check.py", "constraints.txt"):
        shutil.copy2(course.ROOT / name, kit / name)
    (kit / "pyproject.toml").write_text(kit_pyproject())
    readme = (TEMPLATE_DIR / "README.md").read_text()
    readme = readme.replace("@ASSIGNMENTS@", _assignments_table(summary.assignments))
    (kit / "README.md").write_text(readme.replace("@BUILT_FROM@\n", _built_from()))
    return summary


def _check_destination(dest: Path, force: bool) -> None:
    root = course.ROOT.resolve()
    if dest == root or dest in root.parents:
        raise KitError(f"{dest} holds the course repository itself: choose a folder outside it")
    for src in (course.RELEASE, PACKAGE_DIR, weights.WEIGHTS_DIR):
        if dest == src.resolve() or src.resolve() in dest.parents:
            raise KitError(f"{dest} is inside {src}, which the kit copies: choose another folder")
    if dest.exists() and not dest.is_dir():
        raise KitError(f"{dest} is a file, not a folder: choose a folder for the kit")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise KitError(f"{dest} is not empty: pass --force to replace it, or choose a new folder")


def build(dest: str | Path, force: bool = False) -> KitSummary:
    """Write the student kit into `dest` (replacing a non-empty `dest` only when `force`).

    Built and audited in a temporary folder beside `dest`, then renamed into place: an error at
    any point leaves `dest` as it was.
    """
    dest = Path(dest).expanduser().resolve()
    _check_destination(dest, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's folder is private; the kit is meant to be published
        summary = _write(tmp)
        problems = audit(tmp)
        if problems:
            raise KitError("the kit would leak or break:\n  - " + "\n  - ".join(problems))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.path = dest
    return summary


def main(dest: str, force: bool = False) -> int:
    """`dlcourse student-kit DIR [--force]`: build, then say what was written."""
    try:
        s = build(dest, force=force)
    except (KitError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"student kit written to {s.path}")
    print(f"  release/: {', '.join(s.assignments)}")
    print(f"  dlcourse/: {', '.join(s.modules)}")
    print(f"  weights/: {', '.join(s.weights) or 'none'}")
    print(f"  public_checks/: every assignment; @public tests of {', '.join(s.checks) or 'none'}")
    print("  push check: .gitlab-ci.yml, ci/push-check.sh")
    print(f"students install it with `pip install -c constraints.txt -e .` in {s.path.name}/")
    return 0
