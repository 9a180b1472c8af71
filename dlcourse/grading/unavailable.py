"""Mounted in the grader's student process over course modules that graded code may not use.

`dlcourse.classifier` is the course's CW2 classifier (the student kit ships its weights for FID).
A submitted model built on it would be the course's work, not the student's: in the process
that runs a submission's classes, importing it fails with this message. Notebooks still use it
for their own evaluation cells, which the grader never runs.
"""

raise ImportError(
    "dlcourse.classifier is not available to graded code: a submitted model must be your own "
    "(the course's classifier is for the notebook's evaluation cells only)"
)
