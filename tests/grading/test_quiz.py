"""Quiz answers are read from the notebook's source, never executed, and marked with a message
that names the expected answer."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dlcourse import notebook
from dlcourse.grading import quiz
from dlcourse.grading.spec import Limits, Spec
from dlcourse.grading.student import Student


def write(tmp_path, *sources):
    path = tmp_path / "quiz.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources]), path)
    return path


def student(tmp_path, *sources):
    write(tmp_path, *sources)
    return Student(tmp_path, Spec("quiz", tmp_path, "quiz.ipynb", (), Limits()), sandbox=False)


def test_literals_arithmetic_text_and_tuples(tmp_path):
    path = write(
        tmp_path,
        "Q1 = 3 * 16 * 9 + 16\nQ2 = ' B '\nQ3 = (8, 16, 7, 7)\nQ4 = -2.5 / 2",
        "raise NotImplementedError()\nQ5 = 1\nQ5 = 2  # the last assignment counts",
    )
    values = {name: notebook.literal_of(path, name) for name in ("Q1", "Q2", "Q3", "Q4", "Q5")}
    assert values == {
        "Q1": (True, 448),
        "Q2": (True, " B "),
        "Q3": (True, (8, 16, 7, 7)),
        "Q4": (True, -1.25),
        "Q5": (True, 2),
    }
    assert notebook.literal_of(path, "Q6") == (False, None)


@pytest.mark.parametrize("value", ["x", "2 ** 10", "10 ** 10 ** 10", "1 / 0", "[n for n in (1,)]"])
def test_anything_but_a_literal_is_refused_unevaluated(tmp_path, value):
    path = write(tmp_path, f"x = 3\nQ1 = {value}")
    with pytest.raises(notebook.NotLiteral, match="is not a number, text or tuple|divides by 0"):
        notebook.literal_of(path, "Q1")


def test_no_student_code_runs_to_read_an_answer(tmp_path):
    marker = tmp_path / "ran"
    s = student(
        tmp_path,
        f"open({str(marker)!r}, 'w').write('x')\nQ1 = 28",
        f"def f():\n    open({str(marker)!r}, 'w')\nQ2 = f()",
    )
    quiz.expect(s, "Q1", 28)
    with pytest.raises(AssertionError, match=r"Q2 = ...: `f\(\)` is not a number.*write the value"):
        quiz.expect(s, "Q2", 1)
    assert not marker.exists()


def test_marks_and_messages(tmp_path):
    s = student(tmp_path, "Q1 = 27\nQ2 = 'B'\nQ3 = (8, 16, 7, 7)\nQ4 = 0.1931\nQ5 = x")
    with pytest.raises(AssertionError, match="Q1: you answered 27; the expected answer is 28"):
        quiz.expect(s, "Q1", 28)
    quiz.expect(s, "Q2", "b")
    quiz.expect(s, "Q3", (8, 16, 7, 7))
    with pytest.raises(AssertionError, match=r"expected answer is \(8, 16, 8, 8\)"):
        quiz.expect(s, "Q3", (8, 16, 8, 8))
    quiz.expect(s, "Q4", 0.19315, rel_tol=1e-3)
    with pytest.raises(AssertionError, match=r"within 1e-05 relative"):
        quiz.expect(s, "Q4", 0.19315, rel_tol=1e-5)
    with pytest.raises(AssertionError, match="Q5 = ...: .* write the value itself"):
        quiz.expect(s, "Q5", 1)
    with pytest.raises(AssertionError, match="Q6 is not answered"):
        quiz.expect(s, "Q6", 1)


def test_tuple_and_chained_answers_are_read(tmp_path):
    path = write(tmp_path, "Q7, Q8 = 3, 'a'\nQ9 = Q10 = 2.5\n(Q11, (Q12, Q13)) = (1, (2, 3))")
    found = {n: notebook.literal_of(path, n) for n in ("Q7", "Q8", "Q9", "Q10", "Q11", "Q13")}
    assert found == {
        "Q7": (True, 3), "Q8": (True, "a"), "Q9": (True, 2.5), "Q10": (True, 2.5),
        "Q11": (True, 1), "Q13": (True, 3),
    }  # fmt: skip
    assert notebook.literal_of(write(tmp_path, "Q1, *rest = 1, 2, 3"), "Q1") == (False, None)


def test_the_notebook_is_parsed_once_per_grading(tmp_path, monkeypatch):
    s = student(tmp_path, "\n".join(f"Q{i} = {i}" for i in range(1, 13)))
    calls = []
    real = notebook.literals
    monkeypatch.setattr(notebook, "literals", lambda p: calls.append(p) or real(p))
    for i in range(1, 13):
        quiz.expect(s, f"Q{i}", i)
    assert len(calls) == 1


def test_oversized_code_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    big = "Q1 = (" + "1, " * 60_000 + ")"  # 180,000 characters in one cell
    s = student(tmp_path, big, "Q2 = 2")
    monkeypatch.setattr(notebook.ast, "parse", lambda *a, **k: pytest.fail("parsed"))
    message = r"quiz.ipynb: cell In \[1\] holds 180,00\d characters of code"
    with pytest.raises(Exception, match=message):
        quiz.expect(s, "Q2", 2)
