"""Hidden tests for sample quality (grade cell cw2_gan_quality_hidden).

10,000 samples from the submitted generator (noise drawn by the grader, fixed seed) against the
10,000 test images, in the feature space of the course classifier (`dlcourse.classifier`, weights
in weights/fmnist_classifier.pt): FID, KID, and class coverage, the number of classes that get at
least 2% of the samples (a collapsed generator leaves classes empty). Samples are judged as they
come: outputs outside the stated [-1, 1] format are not rescaled.
Tiers come from `dlcourse train-reference cw2` (weights/manifest.json, gan_generator.pt), measured
on CPU with the same seeds as here:

| 10,000 images                        | FID     | KID     | coverage |
|--------------------------------------|---------|---------|----------|
| real vs real (train subset vs test)  |   0.413 | -0.0384 | 10       |
| reference generator (10 epochs)      |  24.455 |  4.2904 | 10       |
| undertrained generator (100 steps)   | 731.509 | 105.389 |  2       |
| reference outputs mapped to [0, 1]   | 721.624 | 194.219 |  3       |
| uniform noise in [-1, 1]             | 704.630 | 102.064 |  2       |
| collapsed (one image repeated)       | 1185.50 | 543.338 |  1       |
| collapsed to 10 images (a fixture)   | 231.531 |  21.281 |  7       |

For the feedback report (the `report` fixture, which never fails a test) `scores` records FID,
KID and coverage with these tiers, the predicted-class shares, and the first 64 samples.

The last row is tests/cw2's collapsed submission (the reference generator, first noise vector
of every batch of 1,000), graded by these tests. Tier 3 leaves the reference a margin of about
1.6x for another seed or device; tier 2 is about 3x the reference (FID) or 2x (KID); tier 1 sits
below every untrained, broken or collapsed generator measured.
"""

import pytest

from dlcourse import classifier, data, metrics
from dlcourse.grading import points

GRADE_CELL = "cw2_gan_quality_hidden"
FID_TIERS = (200.0, 75.0, 40.0)
KID_TIERS = (15.0, 8.0)
COVERAGE_TIERS = (8, 10)  # classes with >= 2% of the samples: most, all
MIN_SHARE = 0.02  # metrics.class_coverage's
SHOWN = 64


def _record(report, scores: dict, samples) -> None:
    """Tier tables, predicted-class shares and a grid of samples for the feedback report."""
    module = __name__.rsplit(".", 1)[-1]  # results.json names tests module::function

    def rows(tiers, names):
        return [
            (f"tier {i + 1}", t, f"{module}::{name}")
            for i, (t, name) in enumerate(zip(tiers, names, strict=True))
        ]

    fid_tests = ("test_fid_tier_1", "test_fid_tier_2", "test_fid_tier_3")
    kid_tests = ("test_kid_tier_1", "test_kid_tier_2")
    fid, kid = rows(FID_TIERS, fid_tests), rows(KID_TIERS, kid_tests)
    lower = {"higher_is_better": False}
    report.tiers("fid", "FID (lower is better)", scores["fid"], fid, fmt=".2f", **lower)
    report.tiers("kid", "KID (lower is better)", scores["kid"], kid, fmt=".3f", **lower)
    coverage = [
        ("most classes", COVERAGE_TIERS[0], f"{module}::test_coverage_most"),
        ("all classes", COVERAGE_TIERS[1], f"{module}::test_coverage_all"),
    ]
    report.tiers(
        "coverage",
        "Classes with 2% or more of the samples",
        scores["coverage"],
        coverage,
        fmt=".0f",
    )
    report.bars(
        "class shares",
        "Share of the samples in each class (as the course classifier sees them)",
        scores["histogram"],
        data.CLASSES,
        threshold=MIN_SHARE,
        threshold_label="2%: counts as covered",
        fmt=".1%",
    )
    report.images(
        "gan samples",
        f"The first {SHOWN} of your generator's 10,000 samples",
        samples[:SHOWN],
        value_range=(-1.0, 1.0),
        columns=16,
    )


@pytest.fixture(scope="module")
def scores(student, gan_samples, course_classifier, real_features, report) -> dict:
    student.own_weights("gan_generator.pt")  # a course generator's quality is not the student's
    feats, pred = classifier.embed(course_classifier, gan_samples)
    found = {
        "fid": metrics.fid(feats, real_features),
        "kid": metrics.kid(feats, real_features),
        "coverage": metrics.class_coverage(pred),
        "histogram": [round(v, 3) for v in metrics.class_histogram(pred).tolist()],
    }
    report.measure("sample quality", lambda: _record(report, found, gan_samples))
    return found


def _check(scores: dict, key: str, limit: float, label: str) -> None:
    value = scores[key]
    assert value <= limit, (
        f"{key.upper()} {value:.3f} of 10,000 samples against the test set; {label} needs "
        f"<= {limit} (predicted-class shares: {scores['histogram']})"
    )


@points(4)
def test_fid_tier_1(scores):
    """FID clearly below an undertrained generator's."""
    _check(scores, "fid", FID_TIERS[0], "tier 1")


@points(4)
def test_fid_tier_2(scores):
    """FID within reach of the reference generator."""
    _check(scores, "fid", FID_TIERS[1], "tier 2")


@points(4)
def test_fid_tier_3(scores):
    """FID at the reference generator's level."""
    _check(scores, "fid", FID_TIERS[2], "tier 3")


@points(3)
def test_kid_tier_1(scores):
    """KID clearly below an undertrained generator's."""
    _check(scores, "kid", KID_TIERS[0], "tier 1")


@points(3)
def test_kid_tier_2(scores):
    """KID at the reference generator's level."""
    _check(scores, "kid", KID_TIERS[1], "tier 2")


@points(3)
def test_coverage_most(scores):
    """At least 8 of the 10 classes each get 2% or more of the samples."""
    assert scores["coverage"] >= COVERAGE_TIERS[0], (
        f"samples cover {scores['coverage']} of 10 classes (2% or more each): "
        f"mode collapse? predicted-class shares: {scores['histogram']}"
    )


@points(3)
def test_coverage_all(scores):
    """All 10 classes each get 2% or more of the samples."""
    assert scores["coverage"] >= COVERAGE_TIERS[1], (
        f"samples cover {scores['coverage']} of 10 classes (2% or more each); "
        f"predicted-class shares: {scores['histogram']}"
    )
