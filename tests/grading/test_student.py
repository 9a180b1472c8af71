"""Grader-side reading of a submission: weights, sources, contract helpers."""

from pathlib import Path

import pytest
import torch

from dlcourse.grading import isolated_cell, points, public
from dlcourse.grading.student import Student, StudentError

SUBMISSIONS = Path(__file__).resolve().parents[1] / "fixtures" / "grading" / "submissions"


def test_state_dict_refuses_pickled_objects(tmp_path, toy_spec):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "toy.pt")  # a whole module, not a state_dict
    with pytest.raises(
        StudentError, match=r"toy.pt cannot be loaded with torch.load\(weights_only=True\)"
    ):
        Student(tmp_path, toy_spec).state_dict("toy.pt")


def test_state_dict_refuses_non_tensor_dicts(tmp_path, toy_spec):
    torch.save({"epoch": 3}, tmp_path / "toy.pt")
    with pytest.raises(StudentError, match="not a state_dict"):
        Student(tmp_path, toy_spec).state_dict("toy.pt")


def test_source_by_name(toy_spec):
    st = Student(SUBMISSIONS / "good", toy_spec)
    assert st.source("add").startswith("def add(a, b):")
    with pytest.raises(StudentError, match="defines no `Missing`"):
        st.source("Missing")


def test_points_and_public_markers():
    @public
    @points(2)
    def t():
        pass

    assert t._dlcourse_points == 2.0 and t._dlcourse_public
    with pytest.raises(ValueError):
        points(0)


def test_isolated_cell_does_nothing_wherever_it_runs(monkeypatch):
    # Its cell's score comes from the isolated grader alone: no environment changes that.
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert isolated_cell("x") is None
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert isolated_cell("x") is None
