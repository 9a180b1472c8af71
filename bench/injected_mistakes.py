"""What a student sees, and what the hidden tests take, for realistic mistakes in the exercises.

Issue 19 asks each tutorial's closing note to list, for two injected mistakes per new graded
exercise, what the student sees. Claims like "the check catches it" are only worth something
when measured, so this script measures them: for each mistake below it copies the instructor
notebook into a scratch submission, edits the exercise's solution cell (the edit must match
exactly once, or the script stops: a stale mistake must not silently measure the right answer),
runs the notebook in smoke mode with nbclient up to the exercise's check cell (what the student
sees there: its FAIL line, error or "Finish exercise N first"), then grades the submission with
the isolated grader (`runner.grade_submission`, the source of every point) and compares each
cell's points with the instructor's. A mistake that passes both the check and the hidden tests
is a finding for the lead, not something this script hides.

Run (one tutorial at a time on a shared machine; the table is appended to --out as it goes):

    nice -n 19 .venv/bin/python bench/injected_mistakes.py --only t03_cnns --out /tmp/mistakes.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dlcourse import course, weights  # noqa: E402
from dlcourse.grading import runner, spec  # noqa: E402

SHOWN = 150  # characters of the student's line kept in the table


@dataclass(frozen=True)
class Mistake:
    tutorial: str
    cell: str  # grade_id of the solution cell that is edited
    edits: tuple[tuple[str, str], ...]  # (old, new): each old text must occur exactly once
    what: str


def m(tutorial: str, cell: str, old: str, new: str, what: str) -> Mistake:
    return Mistake(tutorial, cell, ((old, new),), what)


T01, T02, T03, T03B = "t01_signals", "t02_padding_strides", "t03_cnns", "t03b_training_cnns"
T04, T04B, T05, T05B = "t04_batchnorm", "t04b_covariate_shift", "t05_vae", "t05b_gan"
T06, T07, T08, T09 = "t06_rnns", "t07_attention", "t08_tokenisation_scaling", "t09_gcns"

MISTAKES: list[Mistake] = [
    # T01 signals
    m(
        T01,
        "t01_signals_corr1d_backward",
        "return convolve1d(g, w)",
        "return convolve1d(g, w.flip(0))",
        "grad_x: flips the kernel before convolving (a correlation)",
    ),
    m(
        T01,
        "t01_signals_corr1d_backward",
        "corr1d(x, g)",
        "corr1d(x, g.flip(0))",
        "grad_w: convolution with g instead of correlation",
    ),
    m(
        T01,
        "t01_signals_pool_by_hand",
        "[[7, 6], [8, 8]]",
        "[[7, 6], [8, 5]]",
        "by hand: last window read as the non-overlapping 2x2 corner",
    ),
    m(
        T01,
        "t01_signals_pool2d_strided",
        "rows, cols = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1",
        "rows, cols = (x.shape[0] - size) // stride, (x.shape[1] - size) // stride",
        "output size without the + 1 (off by one)",
    ),
    m(
        T01,
        "t01_signals_pool2d_strided",
        "x[i * stride : i * stride + size, j * stride : j * stride + size]",
        "x[i : i + size, j : j + size]",
        "windows step by 1, not by the stride",
    ),
    m(
        T01,
        "t01_signals_why_cnns",
        "/ dist.min())",
        "/ dist.max())",
        "relative contrast divided by the largest distance",
    ),
    m(
        T01,
        "t01_signals_why_cnns",
        "c_out * c_in * k * k + c_out",
        "c_out * c_in * k * k",
        "conv parameter count forgets the biases",
    ),
    m(
        T01,
        "t01_signals_siamese",
        "-e * (1 - f2**2)",
        "e * (1 - f2**2)",
        "second branch's error with the wrong sign",
    ),
    m(
        T01,
        "t01_signals_siamese",
        "torch.outer(d1, x1) + torch.outer(d2, x2), d1 + d2",
        "torch.outer(d1, x1), d1",
        "shared weights: only the first branch's gradient",
    ),
    # T02 padding and strides (dependent exercises now marked with a correct conv_output_size)
    m(
        T02,
        "t02_padding_strides_output_size",
        "- d * (k - 1) - 1) // s + 1",
        "- d * (k - 1)) // s + 1",
        "off by one: (n + 2p - d(k - 1)) // s + 1",
    ),
    m(
        T02,
        "t02_padding_strides_output_size",
        "- d * (k - 1) - 1)",
        "- (k - 1) - 1)",
        "dilation ignored",
    ),
    # T03 CNNs
    m(
        T03,
        "t03_cnns_variance_of_average",
        "sigma**2 * (rho",
        "sigma * (rho",
        "sigma instead of sigma squared",
    ),
    m(
        T03,
        "t03_cnns_variance_of_average",
        "(1 - rho) / n)",
        "(1 - rho) / n**0.5)",
        "divides by sqrt(n) (standard error confused with variance)",
    ),
    # T03b training CNNs
    m(
        T03B,
        "t03b_training_cnns_shift_errors",
        "shift if out_shift is None else out_shift",
        "shift",
        "equivariance: output rolled by the input shift, out_shift ignored",
    ),
    m(
        T03B,
        "t03b_training_cnns_shift_errors",
        "return float((f(torch.roll(x, shift, dims=(2, 3))) - out)",
        "return float((f(torch.roll(x, shift, dims=(1, 2))) - out)",
        "invariance: rolls channels and rows (dims 1, 2) instead of rows and columns",
    ),
    m(
        T03B,
        "t03b_training_cnns_augment",
        "max_shift + 1, (n, 2)",
        "max_shift, (n, 2)",
        "shifts drawn from -max_shift..max_shift - 1 (off by one)",
    ),
    m(
        T03B,
        "t03b_training_cnns_augment",
        "torch.rand(n, generator=generator)",
        "torch.rand(n)",
        "flips drawn from the global RNG, not the generator",
    ),
    m(
        T03B,
        "t03b_training_cnns_softmax_jacobian",
        "torch.diag(s) - torch.outer(s, s)",
        "torch.diag(s * (1 - s))",
        "only the diagonal of the Jacobian",
    ),
    m(
        T03B,
        "t03b_training_cnns_softmax_jacobian",
        "s = torch.softmax(z, dim=0)",
        "s = z.exp() / z.exp().sum()",
        "softmax by hand without subtracting the max",
    ),
    m(
        T03B,
        "t03b_training_cnns_spacing",
        "* torch.finfo(dtype).eps",
        "* torch.finfo(dtype).eps / 2",
        "unit roundoff (eps / 2) instead of the spacing",
    ),
    m(
        T03B,
        "t03b_training_cnns_spacing",
        "torch.floor(torch.log2(",
        "torch.round(torch.log2(",
        "exponent rounded instead of floored",
    ),
    # T04 batch-norm
    m(
        T04,
        "t04_batchnorm_class",
        "with torch.no_grad():",
        "if True:  # no torch.no_grad()",
        "running statistics updated with autograd attached (no torch.no_grad)",
    ),
    m(
        T04,
        "t04_batchnorm_class",
        "self.momentum * var * n / (n - 1)",
        "self.momentum * var",
        "running variance biased (no n / (n - 1))",
    ),
    m(
        T04,
        "t04_batchnorm_batch_noise",
        "(trials, batch_size), generator=generator)",
        "(trials, batch_size))",
        "batches drawn from the global RNG, not the generator",
    ),
    m(
        T04,
        "t04_batchnorm_batch_noise",
        ".mean(dim=1).std(dim=0)",
        ".mean(dim=0).std(dim=0)",
        "wrong axis: mean over the trials, std over the batch",
    ),
    m(
        T04,
        "t04_batchnorm_scale_weights",
        "scaled = copy.deepcopy(model)",
        "scaled = model",
        "scales the caller's model in place (no copy)",
    ),
    m(
        T04,
        "t04_batchnorm_scale_weights",
        "(nn.Conv2d, nn.Linear)",
        "nn.Conv2d",
        "forgets the linear layer",
    ),
    # T04b covariate shift
    m(
        T04B,
        "t04b_covariate_shift_calibration",
        ".floor().long().clamp(0, n_bins - 1)",
        ".floor().long()",
        "p = 1 falls into an 11th bin (no clamp)",
    ),
    m(
        T04B,
        "t04b_covariate_shift_calibration",
        "(p * n_bins).floor()",
        "(p * n_bins).round()",
        "bin index rounded instead of floored",
    ),
    m(
        T04B,
        "t04b_covariate_shift_ess_shift",
        "/ sigma**2))",
        "/ (2 * sigma**2)))",
        "exp(-|mu|^2 / (2 sigma^2)): the density's factor 2",
    ),
    m(T04B, "t04b_covariate_shift_ess_shift", "/ sigma**2))", "/ sigma))", "sigma not squared"),
    m(
        T04B,
        "t04b_covariate_shift_clip",
        "target = min_fraction * len(w)",
        "target = min_fraction",
        "target ESS as a fraction, not a count",
    ),
    m(
        T04B,
        "t04b_covariate_shift_clip",
        "return torch.clamp(w, max=low), low",
        "return torch.clamp(w, min=low), low",
        "clamps from below (min=) instead of above",
    ),
    m(
        T04B,
        "t04b_covariate_shift_label_shift",
        "torch.linalg.solve(confusion, predicted_test)",
        "torch.linalg.solve(confusion.T, predicted_test)",
        "confusion matrix transposed",
    ),
    m(
        T04B,
        "t04b_covariate_shift_label_shift",
        "return weighted / weighted.sum(dim=1, keepdim=True)",
        "return weighted",
        "adjusted posteriors not renormalised",
    ),
    # T05 VAE
    m(T05, "t05_vae_grid", " + math.log(cell_volume)", "", "forgets the grid cell's volume"),
    m(
        T05,
        "t05_vae_grid",
        "torch.logsumexp(log_likelihood + log_prior[:, None], dim=0)",
        "torch.log(torch.exp(log_likelihood + log_prior[:, None]).sum(dim=0))",
        "log of a sum of exps (underflows)",
    ),
    m(
        T05,
        "t05_vae_elbo",
        " + w**2 * q_var) /",
        ") /",
        "expected log-likelihood forgets q's variance term w^2 var",
    ),
    m(
        T05,
        "t05_vae_elbo",
        "q_var = q_logvar.exp()",
        "q_var = (0.5 * q_logvar).exp()",
        "std taken for the variance",
    ),
    m(
        T05,
        "t05_vae_kl_full",
        "torch.linalg.solve(cov2, cov1)",
        "torch.linalg.solve(cov1, cov2)",
        "trace term inverted: tr(S1^-1 S2)",
    ),
    m(
        T05,
        "t05_vae_kl_full",
        "slogdet(cov2).logabsdet - torch.linalg.slogdet(cov1).logabsdet",
        "slogdet(cov1).logabsdet - torch.linalg.slogdet(cov2).logabsdet",
        "log-det ratio upside down",
    ),
    m(
        T05,
        "t05_vae_neg_elbo",
        ".flatten(1).sum(dim=1)",
        ".flatten(1).mean(dim=1)",
        "reconstruction averaged over pixels, not summed",
    ),
    m(
        T05,
        "t05_vae_neg_elbo",
        'F.binary_cross_entropy_with_logits(logits, x, reduction="none")',
        'F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none")',
        "BCE on sigmoid probabilities instead of logits",
    ),
    # T05b GAN
    m(
        T05B,
        "t05b_gan_saturating",
        "F.logsigmoid(-fake_logits)",
        "F.logsigmoid(fake_logits)",
        "sign: log D(G(z)) instead of log(1 - D(G(z)))",
    ),
    m(
        T05B,
        "t05b_gan_saturating",
        "F.logsigmoid(-fake_logits)",
        "torch.log(1 - torch.sigmoid(fake_logits))",
        "log(1 - sigmoid) computed directly",
    ),
    # T06 RNNs
    m(T06, "t06_rnns_irnn", 'nonlinearity="relu", ', "", "tanh RNN (nonlinearity left at default)"),
    m(
        T06,
        "t06_rnns_irnn",
        "        rnn.bias_hh_l0.zero_()\n",
        "",
        "zeroes only one of the two biases",
    ),
    m(
        T06,
        "t06_rnns_char_rnn",
        "(embed_size, hidden_size, batch_first=True)",
        "(embed_size, hidden_size)",
        "RNN without batch_first=True",
    ),
    m(
        T06,
        "t06_rnns_char_rnn",
        "self.rnn(self.embed(x), state)",
        "self.rnn(self.embed(x))",
        "forward ignores the carried state",
    ),
    m(
        T06,
        "t06_rnns_generate",
        "last / temperature",
        "last * temperature",
        "multiplies by the temperature",
    ),
    m(
        T06,
        "t06_rnns_generate",
        "device=device_of_model), state)",
        "device=device_of_model))",
        "state not carried: each new character sees only the previous one",
    ),
    # T07 attention
    m(T07, "t07_attention_path", "return n - 1", "return n", "recurrent path n instead of n - 1"),
    m(
        T07,
        "t07_attention_path",
        "return -(-(n - 1) // reach)",
        "return (n - 1) // reach",
        "convolution depth floored instead of ceiled",
    ),
    m(
        T07,
        "t07_attention_rotary",
        "even * cos - odd * sin",
        "even * cos + odd * sin",
        "sign of the sine: not a rotation",
    ),
    m(
        T07,
        "t07_attention_rotary",
        "even, odd = x[..., 0::2], x[..., 1::2]",
        "even, odd = x[..., : d // 2], x[..., d // 2 :]",
        "pairs (i, i + d/2) (the rotate-half layout) instead of (2i, 2i + 1)",
    ),
    m(
        T07,
        "t07_attention_pe2d",
        "torch.cat([rows, cols], dim=1)",
        "torch.cat([cols, rows], dim=1)",
        "columns' half first",
    ),
    m(
        T07,
        "t07_attention_pe2d",
        ".repeat_interleave(width, dim=0)",
        ".repeat(width, 1)",
        "rows tiled instead of repeated: row index wrong",
    ),
    m(
        T07,
        "t07_attention_performer",
        ") / math.sqrt(w.shape[0])",
        ")",
        "features without the 1 / sqrt(m)",
    ),
    m(
        T07,
        "t07_attention_performer",
        "q.shape[-1] ** -0.25",
        "q.shape[-1] ** -0.5",
        "queries and keys scaled by d^-1/2 each (d^-1 in all)",
    ),
    # T08 tokenisation and scaling
    Mistake(
        T08,
        "t08_tokenisation_scaling_fit_scaling_law",
        (
            ("(e, a), _ = best_e_a(found.x)", "(e, a), _ = best_e_a(start)"),
            ("float(found.x)", "float(start)"),
        ),
        "alpha from the grid only (no refinement)",
    ),
    m(
        T08,
        "t08_tokenisation_scaling_fit_scaling_law",
        "return float(e), float(a), float(found.x)",
        "return float(a), float(e), float(found.x)",
        "returns (A, E, alpha)",
    ),
    # T09 GCNs
    m(
        T09,
        "t09_gcns_propagate",
        "degree = torch.bincount(target,",
        "degree = torch.bincount(edge_index[1],",
        "degrees without the self-loops",
    ),
    m(
        T09,
        "t09_gcns_propagate",
        "weight = degree[source].rsqrt() * degree[target].rsqrt()",
        "weight = 1 / degree[target]",
        "mean (row) normalisation instead of symmetric",
    ),
    m(
        T09,
        "t09_gcns_edge_softmax",
        "e = torch.exp(scores - largest[target])",
        "e = torch.exp(scores)",
        "no max subtracted",
    ),
    m(
        T09,
        "t09_gcns_edge_softmax",
        "return e / total[target]",
        "return e / e.sum()",
        "normalised over all edges, not per target node",
    ),
    Mistake(
        T09,
        "t09_gcns_gat",
        (
            ("source = torch.cat([edge_index[0], loops])", "source = edge_index[0]"),
            ("target = torch.cat([edge_index[1], loops])", "target = edge_index[1]"),
        ),
        "no self-loops",
    ),
    m(
        T09,
        "t09_gcns_gat",
        "(wx @ self.att_dst)[target] + (wx @ self.att_src)[source]",
        "(wx @ self.att_src)[target] + (wx @ self.att_dst)[source]",
        "att_src and att_dst swapped",
    ),
    Mistake(
        T09,
        "t09_gcns_readout",
        (
            (
                'torch.full((num_graphs, h.shape[1]), float("-inf"),',
                "torch.zeros((num_graphs, h.shape[1]),",
            ),
            ("include_self=False", "include_self=True"),
        ),
        "max pooling started at 0 (negative features lost)",
    ),
    m(
        T09,
        "t09_gcns_readout",
        "/ torch.bincount(batch, minlength=num_graphs).to(h.dtype)[:, None]",
        "/ len(batch)",
        "mean divides by every node of the batch",
    ),
]


def edited(nb: nbformat.NotebookNode, mistake: Mistake) -> int:
    """Apply the mistake to its solution cell; return the cell's index."""
    (index,) = [
        i for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == mistake.cell
    ]  # fmt: skip
    for old, new in mistake.edits:
        found = nb.cells[index].source.count(old)
        if found != 1:
            raise SystemExit(f"{mistake.tutorial}/{mistake.cell}: {old!r} found {found} times")
        nb.cells[index].source = nb.cells[index].source.replace(old, new)
    return index


def check_cell(nb: nbformat.NotebookNode, solution: int) -> int:
    """The first graded cell after the solution cell: the exercise's visible check."""
    for i in range(solution + 1, len(nb.cells)):
        meta = nb.cells[i].metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            return i
    raise SystemExit(f"no check cell after cell {solution}")


def make_submission(tutorial: str, scratch: Path, mistake: Mistake | None) -> tuple[Path, int, int]:
    """Instructor notebook (+ its weight files) as a submission, with the mistake applied."""
    a = course.get(tutorial)
    folder = scratch / (mistake.what[:20].replace(" ", "_") if mistake else "instructor") / tutorial
    shutil.copytree(a.source_dir, folder)
    for w in spec.load(tutorial).weights:
        shutil.copy(weights.WEIGHTS_DIR / w, folder / w)
    nb_path = folder / a.notebooks[0].name
    if mistake is None:
        return folder, -1, -1
    nb = nbformat.read(nb_path, as_version=4)
    solution = edited(nb, mistake)
    nbformat.write(nb, nb_path)
    return folder, solution, check_cell(nb, solution)


def student_sees(nb_path: Path, solution: int, check: int) -> str:
    """Run the notebook (smoke mode) up to the check cell; what cells after the edit show."""
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells = nb.cells[: check + 1]
    env = {"DLCOURSE_SMOKE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in (*env, "NBGRADER_EXECUTION")}
    os.environ.update(env)
    os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(nb_path.parent)}},
        ).execute()  # fmt: skip
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seen = []
    for cell in nb.cells[solution:]:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                seen += [ln for ln in out.text.splitlines() if "FAIL" in ln or "Finish" in ln]
            elif out.output_type == "error" and not out.evalue.startswith("FAIL"):
                seen.append(f"{out.ename}: {out.evalue.splitlines()[0] if out.evalue else ''}")
    return " / ".join(dict.fromkeys(seen)) or "(all checks PASS)"


def cell_points(folder: Path, tutorial: str, out: Path) -> dict[str, tuple[float, float]]:
    graded = runner.grade_submission(folder, spec.load(tutorial), out)
    if graded.failure:
        raise SystemExit(f"{tutorial}: grading failed: {graded.failure}")
    return {c: (g.score, g.max_score) for c, g in graded.grade_cells().items() if c}


def shorten(text: str) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def run_tutorial(tutorial: str, mistakes: list[Mistake]) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mistakes-") as tmp:
        scratch = Path(tmp)
        folder, _, _ = make_submission(tutorial, scratch, None)
        reference = cell_points(folder, tutorial, scratch / "out-instructor")
        for k, mistake in enumerate(mistakes):
            folder, solution, check = make_submission(tutorial, scratch / str(k), mistake)
            nb_path = folder / course.get(tutorial).notebooks[0].name
            seen = student_sees(nb_path, solution, check)
            got = cell_points(folder, tutorial, scratch / f"out-{k}")
            nb = nbformat.read(nb_path, as_version=4)
            own = nb.cells[check].metadata["nbgrader"]["grade_id"]
            shown = [own] + [c for c in got if c != own and got[c][0] != reference[c][0]]
            points = ", ".join(
                f"{c.removeprefix(tutorial + '_')} {got[c][0]:g}/{got[c][1]:g}" for c in shown
            )
            caught = [
                "check" if seen != "(all checks PASS)" else "",
                "hidden" if got[own][0] < reference[own][0] else "",
            ]
            verdict = " + ".join(c for c in caught if c) or "**MISSED by both**"
            exercise = mistake.cell.removeprefix(tutorial + "_")
            rows.append(
                f"| {tutorial} | {exercise} | {shorten(mistake.what)} "
                f"| {shorten(seen)} | {points} | {verdict} |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="*", help="tutorials to run (default: all)")
    p.add_argument("--out", type=Path, help="markdown file the table is appended to")
    args = p.parse_args()
    tutorials = list(dict.fromkeys(mk.tutorial for mk in MISTAKES))
    for t in args.only or []:
        if t not in tutorials:
            raise SystemExit(f"no mistakes for {t!r}; known: {', '.join(tutorials)}")
    header = [
        "| tutorial | exercise | mistake | what the student sees | hidden tests (got/max) "
        "| caught by |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    for t in args.only or tutorials:
        rows = run_tutorial(t, [mk for mk in MISTAKES if mk.tutorial == t])
        if args.out:
            fresh = not args.out.exists() or not args.out.read_text().strip()
            with args.out.open("a") as f:
                f.write("\n".join([*(header if fresh else []), *rows]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
