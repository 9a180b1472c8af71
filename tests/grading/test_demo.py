"""`dlcourse demo` lays out its cohort in a scratch course (the grading itself is covered by
test_autograde on the toy course; the full demo is `make demo`)."""

import pytest

from dlcourse.grading import demo


@pytest.mark.slow
def test_layout_writes_a_four_student_cohort(tmp_path):
    root = tmp_path / "demo"
    assert demo.layout(root) == ["reference", "partial", "broken", "adversarial"]
    subs = {p.parent.name: p for p in (root / "submitted").glob("*/pytorch_intro_1")}
    assert set(subs) == {"reference", "partial", "broken", "adversarial"}
    assert not (subs["broken"] / "intro1_mlp.pt").exists()
    assert (subs["reference"] / "intro1_mlp.pt").is_file()
    assert "_stolen_labels" in (subs["adversarial"] / "pytorch_intro_1.ipynb").read_text()
    assert (root / "release" / "pytorch_intro_1" / "pytorch_intro_1.ipynb").is_file()
    assert demo.layout(root)  # a demo folder is replaced on the next run ...


def test_layout_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="was not made by the demo"):
        demo.layout(tmp_path)  # ... but nothing else is ever deleted
    assert (tmp_path / "mine.txt").read_text() == "keep me"
