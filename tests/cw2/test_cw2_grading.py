"""CW2's hidden tests on the instructor submission and on submissions with one known fault each.

Each fault must lose exactly the marks of the behaviour it breaks and nothing else. Fixtures are
made here from the instructor notebook (one textual change each) and the reference weights in
weights/, so they follow the notebook as it evolves (a change that no longer applies fails loudly).
"""

import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from graded_fixtures import failed, grade_once, with_change
from report_pages import check_pages

from dlcourse import course, weights
from dlcourse.grading import measurements, report
from dlcourse.grading.results import GradingResults

SOURCE = course.ROOT / "source" / "cw2" / "cw2.ipynb"
WEIGHT_FILES = ("vae_model.pt", "gan_generator.pt", "gan_discriminator.pt")
QUALITY_TESTS = {
    "test_gan_quality::test_fid_tier_1", "test_gan_quality::test_fid_tier_2",
    "test_gan_quality::test_fid_tier_3", "test_gan_quality::test_kid_tier_1",
    "test_gan_quality::test_kid_tier_2",
}  # fmt: skip
COVERAGE_TESTS = {"test_gan_quality::test_coverage_most", "test_gan_quality::test_coverage_all"}

# name: (cell grade_id, text in the instructor's solution, replacement, extra tensors for the
# weight file {file: {key: tensor}}, the tests it must fail)
FAULTS = {
    "vae_over_limit": (
        "cw2_vae",
        "        self.decoder = nn.Sequential(\n",
        "        self.unused = nn.Parameter(torch.zeros(700_000))\n"
        "        self.decoder = nn.Sequential(\n",
        {"vae_model.pt": {"unused": torch.zeros(700_000)}},
        {"test_vae_model::test_vae_parameter_limit"},
    ),
    "wrong_kl_sign": (
        "cw2_vae_loss",
        "kl = -0.5 * torch.sum(",
        "kl = 0.5 * torch.sum(",
        {},
        {"test_vae_loss::test_loss_kl_by_hand", "test_vae_loss::test_loss_matches_formula"},
    ),
    "collapsed_generator": (
        "cw2_gan_models",
        "        return self.main(z)\n",
        "        return self.main(z[:1]).expand(len(z), -1, -1, -1)\n",
        {},
        QUALITY_TESTS | COVERAGE_TESTS,
    ),
    "generator_0_1": (
        "cw2_gan_models",
        "        return self.main(z)\n",
        "        return (self.main(z) + 1) / 2\n",
        {},
        QUALITY_TESTS | COVERAGE_TESTS | {"test_gan_model::test_generator_range"},
    ),
    "generator_over_limit": (
        "cw2_gan_models",
        "        ngf = 32\n",
        "        ngf = 32\n        self.unused = nn.Parameter(torch.zeros(25_000_000))\n",
        {"gan_generator.pt": {"unused": torch.zeros(25_000_000)}},
        {"test_gan_model::test_gan_parameter_limit"},
    ),
}


def _submission(root: Path, name: str, nb, extra: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "cw2.ipynb")
    for file in WEIGHT_FILES:
        if file in extra:
            sd = weights.load_state_dict(file)
            torch.save({**sd, **extra[file]}, folder / file)
        else:
            shutil.copy(weights.WEIGHTS_DIR / file, folder / file)
    return folder


@pytest.fixture(scope="module")
def graded(once) -> dict[str, GradingResults]:
    missing = [
        f
        for f in (*WEIGHT_FILES, "fmnist_classifier.pt")
        if not (weights.WEIGHTS_DIR / f).is_file()
    ]
    if missing:
        pytest.fail(f"weights/{missing[0]} is missing: run `dlcourse train-reference cw2`")

    def submissions(root: Path) -> list[Path]:
        subs = [_submission(root, "instructor", nbformat.read(SOURCE, as_version=4), {})]
        for name, (grade_id, old, new, extra, _) in FAULTS.items():
            subs.append(_submission(root, name, with_change(SOURCE, grade_id, old, new), extra))
        return subs

    return grade_once(once, "cw2", submissions)


@pytest.mark.slow
def test_instructor_passes_every_hidden_test(graded):
    doc = graded["instructor"]
    assert not failed(doc), [t.output for t in doc.tests if t.score < t.max_score]
    assert doc.score == doc.max_score == 71  # 3 + 8 + 21 (VAE) + 3 + 12 + 24 (GAN) automatic points


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_loses_exactly_its_marks(graded, fault):
    assert failed(graded[fault]) == FAULTS[fault][4]


@pytest.mark.slow
def test_reports_show_the_graders_own_measurements(graded):
    out = Path(graded["instructor"].submission).parent / "grades"
    doc = measurements.load(out / "instructor" / measurements.FILE)
    items = {i["key"]: i for i in doc["items"]}
    assert list(items) == ["fid", "kid", "coverage", "class shares", "gan samples", "elbo",
                           "reconstructions", "vae samples"] and not doc["notes"]  # fmt: skip
    assert items["fid"]["value"] == pytest.approx(24.455, abs=0.01)  # as calibrated
    assert items["elbo"]["value"] == pytest.approx(254.18, abs=0.01)
    collapsed = measurements.load(out / "collapsed_generator" / measurements.FILE)["items"]
    assert next(i for i in collapsed if i["key"] == "coverage")["value"] == 7
    html = (out / "instructor" / report.REPORT).read_text()
    assert html.count('src="data:image/png;base64,') == 1 + 64 + 16 + 32


@pytest.mark.slow
def test_report_pages_render_in_chromium(graded):
    out = Path(graded["instructor"].submission).parent / "grades"
    pages = [out / "instructor" / report.REPORT, out / report.COHORT]
    seen = check_pages(pages, out.parent / "screenshots")
    assert seen[pages[0]]["images"] == 113
