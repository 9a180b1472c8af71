"""The public checks (dlcourse/public_checks.py): grader_tests/ reduced to its @public tests.

They ship in the student kit, so everything here is about what must not: hidden tests, their
thresholds and notes, modules without public tests, the private test set's seed. Each rule is
tried on a small hidden-test folder written here (nothing is graded, so this takes a second),
and the reduction of the course's own grader_tests/ is checked against its @public tests.
"""

import ast
import textwrap
from pathlib import Path

import pytest

from dlcourse import course, public_checks
from dlcourse.grading import heldout, spec

HIDDEN = '''\
"""Hidden tests: the tiers come from the reference (0.9386 on the private set)."""

import torch

from dlcourse import metrics
from dlcourse.grading import heldout, points, public

GRADE_CELL = "toy_hidden"
TIERS = (0.911, 0.918, 0.925)  # reference minus one point
LIMIT = 100  # parameters


def probe_count(ns):
    return sum(p.numel() for p in ns["Net"]().parameters())


def probe_logits(ns, x):
    return ns.load_model("Net", "toy.pt")(x)


def _accuracy(student):
    logits = student.run(probe_logits, x=heldout.private_test_split().x)
    return metrics.accuracy(logits, heldout.private_test_split().y)


def test_helper():  # a helper named like a test
    return LIMIT


test_helper.__test__ = False


@public
@points(1)
def test_size(student, shape):
    """At most 100 parameters."""
    # a comment about the hidden margin
    assert student.run(probe_count) <= LIMIT and shape == (2, 2)


@points(4)
def test_tier_3(student):
    """Accuracy reaches tier 3."""
    assert _accuracy(student) >= TIERS[2]
'''
CONFTEST = """\
import pytest

from dlcourse.reference.cw1 import SECRET


@pytest.fixture
def shape():
    return (2, 2)


@pytest.fixture
def reference_logits():
    return SECRET
"""


@pytest.fixture
def hidden(tmp_path) -> Path:
    folder = tmp_path / "grader_tests" / "toy"
    folder.mkdir(parents=True)
    (folder / "assignment.toml").write_text('notebook = "toy.ipynb"\nweights = ["toy.pt"]\n')
    (folder / "test_model.py").write_text(HIDDEN)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_layers.py").write_text(
        "from dlcourse.grading import points\n\n\n@points(1)\ndef test_hidden(student):\n"
        "    assert True\n"
    )
    return folder.parent


def _names(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if hasattr(n, "name")}


def test_only_public_tests_and_what_they_use_are_kept(hidden, tmp_path):
    out = tmp_path / "public_checks"
    assert public_checks.build(out, ["toy"], hidden) == {"toy": ["test_model.py", "conftest.py"]}
    assert sorted(p.name for p in (out / "toy").iterdir()) == [
        "assignment.toml", "conftest.py", "test_model.py",
    ]  # fmt: skip
    module = (out / "toy" / "test_model.py").read_text()
    assert _names(out / "toy" / "test_model.py") == {"test_size", "probe_count"}
    for gone in ("TIERS", "0.9386", "_accuracy", "heldout", "metrics", "test_tier_3", "#"):
        assert gone not in module, gone
    assert "GRADE_CELL = 'toy_hidden'" in module and "LIMIT = 100" in module
    conftest = (out / "toy" / "conftest.py").read_text()
    assert "def shape" in conftest and "reference" not in conftest and "SECRET" not in conftest
    assert public_checks.audit(out, hidden) == []


def test_audit_names_every_leak(hidden, tmp_path):
    out = tmp_path / "public_checks"
    public_checks.build(out, ["toy"], hidden)
    toy = out / "toy"
    (toy / "test_layers.py").write_text("def test_hidden(student):\n    assert True\n")
    (toy / "test_model.py").write_text(
        (toy / "test_model.py").read_text().replace("test_size", "test_sizes")
        + "\n\ndef test_tier_3(student):\n    pass\n\nclass TestMore:\n    pass\n"
        + "\nfrom . import helpers\n"
    )
    (toy / "heldout.toml").write_text("seed = 1\n")
    (toy / "notes.txt").write_text("see the README\n")
    (toy / "conftest.py").write_text(f"SEED = {heldout.seed()}\n")
    problems = "\n".join(public_checks.audit(out, hidden))
    for expected in (
        "public_checks/toy/test_layers.py: test_hidden is collected as a test and is not @public",
        "public_checks/toy/test_model.py: test_tier_3 is collected as a test and is not @public",
        "public_checks/toy/test_model.py: TestMore is collected as a test and is not @public",
        "public_checks/toy/test_model.py: test_sizes is not a public test of test_model.py",
        "public_checks/toy/test_model.py lacks the public test test_size",
        "public_checks/toy/test_model.py:",  # the relative import
        "public_checks/toy/heldout.toml: the private test set's seed file never ships",
        "public_checks/toy/notes.txt is not an assignment.toml, conftest.py or test module",
        "public_checks/toy/conftest.py holds the private test set's seed",
    ):
        assert expected in problems, expected
    assert "a relative import" in problems


@pytest.mark.parametrize(
    "statement", ["print('calibrating')", "if True:\n    X = 1", "for i in range(2):\n    pass"]
)
def test_a_statement_it_cannot_judge_stops_the_build(hidden, tmp_path, statement):
    path = hidden / "toy" / "test_model.py"
    path.write_text(path.read_text() + "\n" + textwrap.dedent(statement) + "\n")
    with pytest.raises(public_checks.PublicChecksError, match=r"test_model\.py:\d+: a top-level"):
        public_checks.build(tmp_path / "public_checks", ["toy"], hidden)


def test_a_conftest_hook_stops_the_build(hidden, tmp_path):
    (hidden / "toy" / "conftest.py").write_text(
        CONFTEST + "\n\ndef pytest_collection_modifyitems(items):\n    pass\n"
    )
    with pytest.raises(public_checks.PublicChecksError, match="hook pytest_collection_modify"):
        public_checks.build(tmp_path / "public_checks", ["toy"], hidden)


def test_every_released_assignment_gets_a_folder(hidden, tmp_path):
    """`dlcourse validate` knows an assignment by its public_checks/ folder: one without public
    tests gets its assignment.toml alone, one without grader tests a written one."""
    (hidden / "plain").mkdir()
    (hidden / "plain" / "assignment.toml").write_text('notebook = "plain.ipynb"\n')
    (hidden / "plain" / "test_hidden.py").write_text(
        "from dlcourse.grading import points\n\n\n@points(1)\ndef test_x(student):\n    pass\n"
    )
    released = next(a.name for a in course.assignments() if not (hidden / a.name).is_dir())
    out = tmp_path / "public_checks"
    written = public_checks.build(out, ["toy", "plain", released], hidden)
    assert written == {"toy": ["test_model.py", "conftest.py"], "plain": [], released: []}
    assert sorted(p.name for p in (out / "plain").iterdir()) == ["assignment.toml"]
    generated = spec.load(released, out / released)
    assert generated.notebook == f"{released}.ipynb" and generated.weights == ()
    assert public_checks.audit(out, hidden) == []


def test_the_course_public_checks_are_its_public_tests(tmp_path):
    out = tmp_path / "public_checks"
    names = [a.name for a in course.assignments()]
    written = public_checks.build(out, names)
    assert public_checks.audit(out) == []
    assert sorted(written) == sorted(names)
    assert all((out / n / "assignment.toml").is_file() for n in names)
    for origin in sorted(course.GRADER_TESTS.glob("*/test_*.py")):
        public = public_checks.public_tests(origin)
        shipped = out / origin.parent.name / origin.name
        assert shipped.is_file() == bool(public), origin
        if public:
            assert public_checks.public_tests(shipped) == public
            assert origin.name in written[origin.parent.name]
    cw1 = (out / "cw1" / "test_model.py").read_text()
    for hidden_only in ("TIERS", "ABOVE_BASELINE", "REFERENCE_MEASURED", "test_tier_1", "report"):
        assert hidden_only not in cw1, hidden_only
