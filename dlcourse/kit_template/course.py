"""Where things are in the student kit (the course repository's own course.py is staff-only).

The grading engine the kit ships for `dlcourse validate` finds an assignment's checks under
GRADER_TESTS: here public_checks/, which holds the @public tests only (dlcourse/public_checks.py
in the course repository writes it). STUDENT_KIT tells dlcourse.grading.heldout that there is
no private test set here, and no seed: the public check that times a model on 10,000 images
gets images of the same shape instead (`heldout.stand_in_split`).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "release"
GRADER_TESTS = ROOT / "public_checks"
STUDENT_KIT = True
