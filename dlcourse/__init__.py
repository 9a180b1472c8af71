"""Course kit for the deep-learning course: data, devices, grading and the `dlcourse` CLI."""

__version__ = "0.1.0"
