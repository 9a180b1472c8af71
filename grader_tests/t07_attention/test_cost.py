"""Hidden tests for `score_matrix_bytes` (grade cell t07_attention_cost_check, 1 point)."""

import torch

from dlcourse.grading import points

GRADE_CELL = "t07_attention_cost_check"


def probe_bytes(ns, args, element_size):
    fn = ns["score_matrix_bytes"]
    return fn(*args) if element_size is None else fn(*args, element_size=element_size)


@points(1)
def test_score_matrix_bytes(student):
    """Bytes of (batch, heads, q_len, k_len) tensors, as their nbytes says."""
    dtypes = {None: torch.float32, 2: torch.float16, 8: torch.float64}
    for args, size in [((3, 5, 7, 11), None), ((8, 12, 1024, 1024), None), ((2, 8, 1024, 512), 2),
                       ((1, 1, 3, 5), 8)]:  # fmt: skip
        got = student.run(probe_bytes, args=list(args), element_size=size)
        want = torch.empty(*args, dtype=dtypes[size], device="meta").nbytes
        call = (
            f"score_matrix_bytes{args}"
            if size is None
            else (f"score_matrix_bytes{args[:-1] + (args[-1],)}, element_size={size}")
        )
        assert isinstance(got, int | float) and not isinstance(got, bool), (
            f"{call} returned {type(got).__name__}, expected a whole number"
        )
        assert got == want, f"{call} = {got}, expected {want}"
