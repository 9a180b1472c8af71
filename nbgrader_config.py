"""nbgrader settings for the course; `dlcourse` reads the same file, so both agree.

Plain `nbgrader autograde A` is the isolated pipeline: the student's kernel runs in the
bubblewrap sandbox on a scratch copy, and the hidden tests of grader_tests/A run in the
isolated grader and write their points into the gradebook (dlcourse/grading/preprocessors.py).
"""

from pathlib import Path

from dlcourse.grading import feedback, spec

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
# Assessed tasks live in source/; the intro notebooks and tutorials are generated with
# `dlcourse release`, which points nbgrader at notebooks/ or tutorials/ for those.
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.pt", "data"]

# Deep-learning cells are slow: a cell may take 10 minutes; a dead kernel is an error, not 0.
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = True

# Warnings on stderr would zero a passing test cell: drop the harmless ones.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning|WARNING|it/s\]|s/it\]"

# A student's own weight files must never be replaced by the instructor's copies.
c.Autograde.exclude_overwriting = spec.exclude_overwriting()
# Deleted test cells come back from the source notebook (and the student is told).
c.OverwriteCells.add_missing_cells = True

_DL = "dlcourse.grading.preprocessors"
# An assignment missing from the gradebook (a fresh clone: `nbgrader generate_assignment A
# --force` records it) stops with one line saying so, not a traceback per student.
c.Autograde.pre_convert_hook = "dlcourse.grading.autograde.require_assignment"
c.Autograde.sanitize_preprocessors = [
    f"{_DL}.RejectSpecialFiles",
    "nbgrader.preprocessors.ClearOutput",
    f"{_DL}.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    f"{_DL}.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    f"{_DL}.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    f"{_DL}.SaveAutoGrades",
    f"{_DL}.IsolatedGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# SandboxedExecute is an Execute: the settings above apply to it as well.

# Feedback shows no hidden test, and its pages quote students' markdown and outputs: sanitised,
# no scripts, a strict CSP (dlcourse/grading/feedback.py).
c.GenerateFeedback.preprocessors = feedback.FEEDBACK_PREPROCESSORS
c.SanitizeHTML.enabled = True  # nbconvert's preprocessors are off unless enabled
c.GenerateFeedback.exporter_class = "dlcourse.grading.feedback.SafeFeedbackExporter"
# Exports leave a submission's total empty while any cell waits for a person (a written answer,
# or a test cell the isolated grader could not mark): dlcourse/grading/export.py.
c.ExportApp.plugin_class = "dlcourse.grading.export.CsvExport"
