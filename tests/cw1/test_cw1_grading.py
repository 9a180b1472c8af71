"""CW1's hidden tests on the instructor notebook and on submissions with one known bug each.

Each bug must lose exactly the marks of the behaviour it breaks and nothing else; the fixtures
are made here from the instructor notebook by one textual change each, so they follow the
notebook as it evolves (a change that no longer applies fails loudly).
"""

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from graded_fixtures import cells, failed, grade_once, with_change
from report_pages import check_pages

from dlcourse import course, weights
from dlcourse.grading import measurements, report
from dlcourse.grading.results import GradingResults

SOURCE = course.ROOT / "source" / "cw1" / "cw1.ipynb"
FIXTURES = Path(__file__).parent / "fixtures"
TIER_TESTS = {
    "test_model::test_beats_baseline", "test_model::test_tier_1", "test_model::test_tier_2",
    "test_model::test_tier_3",
}  # fmt: skip
MODEL_TESTS = TIER_TESTS | {
    "test_model::test_weights_load", "test_model::test_parameter_limit",
    "test_model::test_evaluation_time",
}  # fmt: skip
CONV_TESTS = {
    f"test_conv2d::test_conv_{t}"
    for t in ("forward_square_kernel", "rectangular_kernel", "padding", "stride", "without_bias",
              "batch_of_one", "gradients")
}  # fmt: skip

# name: (cell grade_id, text in the instructor's solution, the buggy replacement, tests it fails)
BUGS = {
    "conv_flipped": (
        "cw1_conv2d",
        "out = self.w.reshape(self.out_channels, -1) @ cols",
        "out = self.w.flip(2, 3).reshape(self.out_channels, -1) @ cols",
        CONV_TESTS,
    ),
    "stride_ignored": (
        "cw1_conv2d",
        "self.kernel_size, self.stride, self.padding\n",
        "self.kernel_size, (1, 1), self.padding\n",
        {"test_conv2d::test_conv_stride"},
    ),
    "biased_running_var": (
        "cw1_batchnorm",
        "unbiased = var * count / max(count - 1, 1)",
        "unbiased = var",
        {"test_batchnorm::test_bn_running_var"},
    ),
}


def _submission(root: Path, name: str, nb, weight_file: Path) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "cw1.ipynb")
    shutil.copy(weight_file, folder / "cw1_model.pt")
    return folder


def _baseline_model():
    """The instructor notebook with its reference MyResNet removed: MyResNet is the baseline."""
    nb = nbformat.read(SOURCE, as_version=4)
    cell = cells(nb)["cw1_model"]
    pattern = r"### BEGIN SOLUTION\n.*?### END SOLUTION\n?"
    assert len(re.findall(pattern, cell.source, flags=re.S)) == 1
    cell.source = re.sub(pattern, "", cell.source, flags=re.S)
    return nb


@pytest.fixture(scope="module")
def graded(once) -> dict[str, GradingResults]:
    reference = weights.WEIGHTS_DIR / "cw1_model.pt"
    if not reference.is_file():
        pytest.fail("weights/cw1_model.pt is missing: run `dlcourse train-reference cw1`")

    def submissions(root: Path) -> list[Path]:
        subs = [_submission(root, "instructor", nbformat.read(SOURCE, as_version=4), reference)]
        for name, (grade_id, old, new, _) in BUGS.items():
            changed = with_change(SOURCE, grade_id, old, new)
            subs.append(_submission(root, name, changed, reference))
        baseline_weights = weights.WEIGHTS_DIR / "cw1_baseline.pt"
        source = nbformat.read(SOURCE, 4)
        subs.append(_submission(root, "wrong_architecture", source, baseline_weights))
        # Made with `dlcourse train-reference cw1 --baseline --epochs 1 --max-steps 40 --out
        # tests/cw1/fixtures/cw1_below_baseline.pt` (0.679 test accuracy).
        below = FIXTURES / "cw1_below_baseline.pt"
        subs.append(_submission(root, "below_baseline", _baseline_model(), below))
        subs.append(_submission(root, "baseline_unchanged", _baseline_model(), baseline_weights))
        return subs

    return grade_once(once, "cw1", submissions)


@pytest.mark.slow
def test_instructor_passes_every_hidden_test(graded):
    doc = graded["instructor"]
    assert not failed(doc), [t.output for t in doc.tests if t.score < t.max_score]
    assert doc.score == doc.max_score == 75


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_bug_loses_exactly_its_marks(graded, bug):
    assert failed(graded[bug]) == BUGS[bug][3]


@pytest.mark.slow
def test_wrong_architecture_loses_every_model_mark(graded):
    doc = graded["wrong_architecture"]
    assert failed(doc) == MODEL_TESTS
    load = next(t for t in doc.tests if t.name == "test_model::test_weights_load")
    assert "does not fit MyResNet" in load.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["below_baseline", "baseline_unchanged"])
def test_model_not_above_baseline_loses_the_tier_marks_only(graded, name):
    assert failed(graded[name]) == TIER_TESTS


@pytest.mark.slow
def test_reports_show_the_graders_own_measurements(graded):
    out = Path(graded["instructor"].submission).parent / "grades"
    doc = measurements.load(out / "below_baseline" / measurements.FILE)
    assert [i["key"] for i in doc["items"]] == ["accuracy", "confusion", "mistakes"]
    assert doc["items"][0]["value"] == pytest.approx(0.6583, abs=0.001)  # as calibrated
    assert int(doc["items"][1]["matrix"].sum()) == 10_000 and not doc["notes"]
    assert not (out / "wrong_architecture" / measurements.FILE).exists()  # nothing measured
    html = (out / "below_baseline" / report.REPORT).read_text()
    assert "below every tier" in html and html.count('src="data:image/png;base64,') == 1 + 16


@pytest.mark.slow
def test_report_pages_render_in_chromium(graded):
    out = Path(graded["instructor"].submission).parent / "grades"
    pages = [out / "below_baseline" / report.REPORT, out / report.COHORT]
    seen = check_pages(pages, out.parent / "screenshots")
    assert seen[pages[0]]["images"] == 17
