"""A cohort batch with awkward folders: every submission gets a row and a reason, nothing crashes.

Also: copied weight files are flagged, and grading without a sandbox is refused unless asked
for, and then said everywhere.
"""

import csv
import os
import shutil
from pathlib import Path

import pytest
from attack_fixtures import zip_bomb

from dlcourse.cli import main
from dlcourse.grading import runner, sandbox, submission
from dlcourse.grading.results import GradingResults
from dlcourse.weights import WEIGHTS_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
SUBMISSIONS = FIXTURES / "submissions"
TOY = ["--assignment", "toy", "--tests", str(FIXTURES / "toy_tests")]
BAD_NAME = os.fsdecode(b"caf\xe9-latin1")  # not valid UTF-8

pytestmark = pytest.mark.skipif(not sandbox.bwrap_works(), reason="needs a working bubblewrap")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, toy_spec):
    base = tmp_path_factory.mktemp("cohort")
    subs = {}
    for name in ("good", "prints"):  # byte-identical toy.pt: flagged as shared
        subs[name] = shutil.copytree(SUBMISSIONS / "good", base / name)
    subs[BAD_NAME] = shutil.copytree(SUBMISSIONS / "nan_output", base / BAD_NAME)
    linked = subs["linked"] = shutil.copytree(SUBMISSIONS / "nan_output", base / "linked")
    (linked / "toy.pt").unlink()
    (linked / "toy.pt").symlink_to(SUBMISSIONS / "good" / "toy.pt")  # another's weights
    fifo = subs["fifo"] = shutil.copytree(SUBMISSIONS / "nan_output", base / "fifo")
    os.mkfifo(fifo / "notes")
    bomb = subs["bomb"] = shutil.copytree(SUBMISSIONS / "nan_output", base / "bomb")
    zip_bomb(bomb / "toy.pt", 600)
    ref = subs["reference"] = shutil.copytree(SUBMISSIONS / "nan_output", base / "reference")
    shutil.copy(WEIGHTS_DIR / "intro1_mlp.pt", ref / "toy.pt")
    given = [*subs.values(), subs["good"], base / "does-not-exist"]  # one twice, one missing
    out = base / "out"
    docs = runner.grade_many(given, toy_spec, out, jobs=2, progress=False)
    return docs, out


def test_every_folder_gets_one_row(cohort):
    docs, out = cohort
    bad = "caf\\xe9-latin1"
    expected = {"good", "prints", bad, "linked", "fifo", "bomb", "reference", "does-not-exist"}
    assert set(docs) == expected
    rows = {r["submission"]: r for r in csv.DictReader((out / "marks.csv").open())}
    assert set(rows) == expected
    assert rows[bad]["score"] == "5"  # graded as usual (nan_output scores 5/8)
    assert "is not a folder" in rows["does-not-exist"]["status"]


def test_links_and_special_files_are_refused_not_followed(cohort):
    docs, _ = cohort
    assert "toy.pt is a symbolic link; submit the file itself" in docs["linked"].failure
    assert docs["linked"].score == 0 and docs["linked"].tests == []
    assert "notes is not a regular file" in docs["fifo"].failure


def test_weight_file_bomb_is_refused_before_reading(cohort):
    docs, _ = cohort
    assert (SUBMISSIONS.parent / "toy_tests").is_dir()
    assert "toy.pt unpacks to 600 MB, over the 512 MB limit" in docs["bomb"].failure


def test_copied_weights_are_flagged(cohort):
    docs, out = cohort
    notes = "\n".join(docs["good"].all_notes)
    assert "FLAG: toy.pt is identical to the weights submitted by prints" in notes
    assert docs["good"].status == "complete - FLAGGED"
    assert docs["good"].score == 8  # a flag is for staff to look at, not a mark
    ref = docs["reference"].flags
    assert ref == ["toy.pt is identical to the course's reference file weights/intro1_mlp.pt"]
    rows = {r["submission"]: r for r in csv.DictReader((out / "marks.csv").open())}
    assert "identical to the weights submitted by good" in rows["prints"]["flags"]
    assert "FLAG:" in (out / "good" / "summary.txt").read_text()


def test_no_sandbox_means_no_grading(monkeypatch, tmp_path, toy_spec, capsys):
    """Without a working bubblewrap, grading stops with what to do (exit 2), unless asked."""
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    with pytest.raises(sandbox.SandboxUnavailable, match="pass --unsandboxed"):
        runner.grade_many([SUBMISSIONS / "good"], toy_spec, tmp_path, progress=False)
    args = ["grade", str(SUBMISSIONS / "good"), *TOY, "--out", str(tmp_path)]
    assert main(args) == 2
    assert "bubblewrap" in capsys.readouterr().err and not (tmp_path / "marks.csv").exists()
    assert main([*args, "--unsandboxed"]) == 0
    assert "good: 8/8 (complete - NOT SANDBOXED)" in capsys.readouterr().out
    graded = GradingResults.read(tmp_path / "good" / "results.json")
    assert graded.sandboxed is False and "NOT SANDBOXED" in "\n".join(graded.all_notes)
    row = next(csv.DictReader((tmp_path / "marks.csv").open()))
    assert row["sandboxed"] == "NOT SANDBOXED" and "NOT SANDBOXED" in row["status"]


def test_a_link_added_after_grading_changes_the_fingerprint(tmp_path):
    """Cached results are reused only for the very same folder: a link added later must make
    the submission be graded (and refused) again, not keep its earlier marks."""
    (tmp_path / "toy.ipynb").write_text("{}")
    before = submission.fingerprint(tmp_path)
    assert submission.fingerprint(tmp_path) == before
    (tmp_path / "toy.pt").symlink_to(tmp_path / "elsewhere.pt")  # dangling: never followed
    assert submission.fingerprint(tmp_path) != before
