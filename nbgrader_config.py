"""nbgrader settings for the course; `dlcourse` reads the same file, so both agree."""

from pathlib import Path

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
c.Autograde.exclude_overwriting = {
    "cw1": ["cw1_model.pt"],
    "cw2": ["vae_model.pt", "gan_generator.pt", "gan_discriminator.pt"],
}
