import filecmp

import pytest

from dlcourse import course, release


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    release.build([], out)
    return out


@pytest.mark.slow
def test_committed_release_equals_a_fresh_build(fresh):
    names = {a.name for a in course.assignments()}
    assert names == {p.name for p in course.RELEASE.iterdir() if p.is_dir()}, (
        "release/ and the source trees list different assignments: run `dlcourse release`"
    )
    for name in names:
        cmp = filecmp.dircmp(fresh / name, course.RELEASE / name)
        stale = cmp.diff_files + cmp.left_only + cmp.right_only
        assert not stale, f"release/{name} is stale ({stale}): run `dlcourse release {name}`"
        for f in cmp.common_files:
            assert (fresh / name / f).read_bytes() == (course.RELEASE / name / f).read_bytes()


def test_release_holds_no_solutions_hidden_tests_or_weights():
    for nb in course.RELEASE.rglob("*.ipynb"):
        text = nb.read_text()
        for marker in release.LEAK_MARKERS:
            assert marker not in text, f"{nb} contains {marker!r}"
    assert not list(course.RELEASE.rglob("*.pt")), "weight files must not be released"


def test_every_assignment_has_a_unique_grade_id_per_cell():
    import nbformat

    for a in course.assignments():
        for nb_path in a.notebooks:
            ids = [
                c.metadata["nbgrader"]["grade_id"]
                for c in nbformat.read(nb_path, as_version=4).cells
                if "nbgrader" in c.metadata
            ]
            assert len(ids) == len(set(ids)), f"{nb_path}: duplicated grade_id"
