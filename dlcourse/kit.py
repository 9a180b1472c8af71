"""The student kit: what students get, in a folder of its own (`dlcourse student-kit DIR`).

Cloning this repository would hand students every solution (notebooks/, tutorials/, source/),
the hidden tests (grader_tests/), the grading engine and the reference weights of the assessed
tasks. The kit holds only the generated student notebooks (release/), the student-facing modules
of `dlcourse` with a student-only CLI, gpu_check.py, constraints.txt, the course weights the
notebooks load, its own pyproject.toml and a student README.

What is shipped is decided by two explicit lists, so that a new file is never published by
accident: STAFF_ONLY names the parts of `dlcourse` that stay here (every other module ships, so a
new student module such as `check.py` needs no change here), and COURSE_WEIGHTS names the only
weight files that ship. The kit is built in a temporary folder beside DIR, audited (no instructor
folders, no solution or hidden-test markers, no reference weights, no import of a staff-only
module) and only then renamed into place, so a published kit is never half-written or leaky.
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

from dlcourse import course, release, weights

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "kit_template"

# Entries of dlcourse/ that never reach students, with the reason.
STAFF_ONLY: dict[str, str] = {
    "grading": "the grading engine and hidden-test plugin",
    "reference": "reference training scripts: they rebuild the solutions' models",
    "sandbox.py": "the grader's sandbox",
    "release.py": "generates releases from the instructor sources with nbgrader",
    "course.py": "paths of the instructor source trees and the hidden tests",
    "kit.py": "this builder",
    "kit_template": "templates of the kit's own files",
    "cli.py": "registers the staff commands; the kit gets kit_template/cli.py instead",
}

# The only weight files that ship: instruments the notebooks use, not answers to any task.
COURSE_WEIGHTS: dict[str, str] = {
    "fmnist_classifier.pt": "CW2's feature space for FID, KID and class coverage "
    "(dlcourse.classifier.load_classifier); students measure their samples with it",
}

# Instructor folders of the repository; none of them may appear in a kit.
INSTRUCTOR_DIRS = (*course.SOURCE_TREES, "grader_tests")

# Dependencies only the staff side needs (nbgrader, the sandbox, notebook execution in tests, the
# PostgreSQL gradebook), and what students need that the repository gets through nbgrader
# (Jupyter, batch execution).
STAFF_DEPENDENCIES = ("nbgrader", "psutil", "nbclient", "jinja2", "psycopg2-binary")
STUDENT_EXTRA_DEPENDENCIES = ("jupyterlab", "nbconvert")

TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".txt", ".toml", ".json", ".cfg", ".yml", ".yaml"}


class KitError(RuntimeError):
    """The kit cannot be built or would leak; the message names the path and what to do."""


@dataclass
class KitSummary:
    """What was written, for the CLI's report."""

    path: Path
    assignments: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)


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
    """Entries of dlcourse/ that ship: everything but STAFF_ONLY and caches."""
    return sorted(
        p
        for p in PACKAGE_DIR.iterdir()
        if p.name not in STAFF_ONLY
        and p.name != "__pycache__"
        and not p.name.endswith(".pyc")
        and (p.is_file() or (p / "__init__.py").is_file())
    )


def _dlcourse_imports(source: str, package: str = "dlcourse") -> set[str]:
    """Top-level `dlcourse` names imported by `source` (function-level imports included).

    `from dlcourse import data` and `import dlcourse.data` both give "data"; relative imports
    inside the package count too. Attributes of dlcourse/__init__ come out as names as well and
    are harmless: only names of staff-only modules are checked.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    names.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 0 and parts[:1] != [package]:
                continue
            rest = parts[1:] if node.level == 0 else parts
            if rest:
                names.add(rest[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


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


def _staff_names() -> set[str]:
    return {name.removesuffix(".py") for name in STAFF_ONLY} - {"cli"}


def check_imports(kit: Path) -> list[str]:
    """Problems: a shipped module or a release notebook importing a staff-only module.

    The kit's `dlcourse` would then fail with ModuleNotFoundError on a student's machine, while in
    the repository (where everything is there) nothing would show.
    """
    staff = _staff_names()
    problems = []
    sources = [(p, p.read_text()) for p in sorted((kit / "dlcourse").rglob("*.py"))]
    sources += [(p, _notebook_code(p)) for p in sorted((kit / "release").rglob("*.ipynb"))]
    for path, text in sources:
        bad = sorted(_dlcourse_imports(text) & staff)
        if bad:
            problems.append(
                f"{path.relative_to(kit)} imports staff-only dlcourse.{', dlcourse.'.join(bad)}: "
                "move what students need into a student module, or drop the import"
            )
    return problems


def audit(kit: Path) -> list[str]:
    """Every reason the folder `kit` must not be published (empty list: it may be).

    Checked independently of how the kit was written: instructor folders, staff-only modules,
    solution or hidden-test markers in any file, any file equal to a reference weight file, and
    imports of staff-only modules.
    """
    problems = [f"{d}/ is an instructor folder" for d in INSTRUCTOR_DIRS if (kit / d).exists()]
    problems += [
        f"dlcourse/{name} is staff-only ({why})"
        for name, why in STAFF_ONLY.items()
        if name != "cli.py" and (kit / "dlcourse" / name).exists()
    ]
    forbidden = assessed_weight_hashes()
    markers = [m.encode() for m in release.LEAK_MARKERS]
    for path in sorted(p for p in kit.rglob("*") if p.is_file()):
        rel = path.relative_to(kit)
        if any(m in path.read_bytes() for m in markers):
            problems.append(f"{rel} contains a solution or hidden-test marker")
        if (sha := weights.sha256(path)) in forbidden:
            problems.append(f"{rel} is a copy of the reference weights {forbidden[sha]}")
    return problems + check_imports(kit)


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
    """The student modules of dlcourse, and the kit's own cli.py."""
    dest = kit / "dlcourse"
    dest.mkdir()
    shipped = []
    for src in _student_modules():
        if src.is_dir():
            shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / src.name)
        shipped.append(src.name)
    shutil.copy2(TEMPLATE_DIR / "cli.py", dest / "cli.py")
    return sorted([*shipped, "cli.py"])


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
        f"requires-python = {json.dumps(project['requires-python'])}\n"
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
    print(f"students install it with `pip install -c constraints.txt -e .` in {s.path.name}/")
    return 0
