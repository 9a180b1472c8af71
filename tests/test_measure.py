"""dlcourse.measure: the peak-memory measurement really measures (allocations of known size,
held together or one after the other), a timing is a positive number, and the slope of a
log-log line."""

import pytest
import torch

from dlcourse import measure

MB = 1_000_000  # bytes of 250,000 float32 numbers


def test_peak_memory_counts_what_is_alive_at_once():
    def two_at_once():
        a = torch.empty(MB // 4)
        b = torch.empty(MB // 4)
        return a, b

    def one_after_another():
        for _ in range(3):
            torch.empty(MB // 4)

    assert measure.peak_memory_bytes(lambda: torch.empty(MB // 4)) == MB
    assert measure.peak_memory_bytes(two_at_once) == 2 * MB
    assert measure.peak_memory_bytes(one_after_another) == MB
    assert measure.peak_memory_bytes(lambda: None) == 0


def test_peak_memory_of_naive_attention_is_two_score_matrices():
    """scores and their softmax are alive together: the peak is two (B, H, L, L) matrices plus
    the output, exactly what the tutorial's figure shows."""
    q = torch.randn(1, 2, 256, 16)

    def naive():
        s = q @ q.transpose(-2, -1) / 4.0
        w = torch.softmax(s, dim=-1)
        return w @ q

    score = 2 * 256 * 256 * 4
    assert measure.peak_memory_bytes(naive) == 2 * score + q.nbytes


def test_time_call_and_slope():
    x = torch.randn(64, 64)
    assert measure.time_call(lambda: x @ x, min_run_time=0.01) > 0
    assert measure.slope([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)
    assert measure.slope([1, 10, 100], [5, 50, 500]) == pytest.approx(1.0)
