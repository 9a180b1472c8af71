"""Hidden answers to quiz_generative, one point each (grade cells quiz_generative_q1 ... q12).

The questions follow T05 (Q1-Q7) and T05b (Q8-Q12): KL divergences between Gaussians, the
reparameterisation trick, the ELBO, the optimal discriminator, the Jensen-Shannon divergence and
mode collapse. Where PyTorch can compute an answer, the test computes it here instead of stating
it, so the key cannot be wrong: KLs from `torch.distributions`, the derivative by autograd, JS
from its definition.
Numbers are accepted within 0.005 (students copy them with three decimals).
"""

import math

import torch
from torch.distributions import Independent, Normal, kl_divergence

from dlcourse.grading import grade_cell, points, quiz

TOL = 0.005


def kl_normal(mu1: float, var1: float, mu2: float, var2: float) -> float:
    """KL(N(mu1, var1) || N(mu2, var2)) from torch.distributions (which takes std devs)."""
    return kl_divergence(Normal(mu1, math.sqrt(var1)), Normal(mu2, math.sqrt(var2))).item()


def js_discrete(p: torch.Tensor, q: torch.Tensor) -> float:
    """JS(p || q) = KL(p || m) / 2 + KL(q || m) / 2 for probability vectors, with 0 log 0 = 0."""
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        mask = a > 0
        return (a[mask] * (a[mask] / m[mask]).log()).sum()

    return (0.5 * kl(p) + 0.5 * kl(q)).item()


@grade_cell("quiz_generative_q1")
@points(1)
def test_q1(student):
    """Q1: KL(N(1, 1) || N(0, 1)) = 1/2."""
    quiz.expect(student, "Q1", kl_normal(1.0, 1.0, 0.0, 1.0), abs_tol=TOL)


@grade_cell("quiz_generative_q2")
@points(1)
def test_q2(student):
    """Q2: KL(N(0, 4) || N(0, 1)) = (4 - 1 - log 4) / 2."""
    quiz.expect(student, "Q2", kl_normal(0.0, 4.0, 0.0, 1.0), abs_tol=TOL)


@grade_cell("quiz_generative_q3")
@points(1)
def test_q3(student):
    """Q3: KL(N(0, 1) || N(0, 4)) = log 2 + 1/8 - 1/2 (not the same as Q2)."""
    quiz.expect(student, "Q3", kl_normal(0.0, 1.0, 0.0, 4.0), abs_tol=TOL)


@grade_cell("quiz_generative_q4")
@points(1)
def test_q4(student):
    """Q4: the VAE KL term for mu = (0.5, -1), log var = (0, log 2)."""
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
    std = torch.tensor([1.0, math.sqrt(2.0)], dtype=torch.float64)
    q = Independent(Normal(mu, std), 1)
    prior = Independent(Normal(torch.zeros(2, dtype=torch.float64), torch.ones(2)), 1)
    quiz.expect(student, "Q4", kl_divergence(q, prior).item(), abs_tol=TOL)


@grade_cell("quiz_generative_q5")
@points(1)
def test_q5(student):
    """Q5: dz / d logvar at mu = 1, logvar = log 4, eps = -0.5 (by autograd)."""
    logvar = torch.tensor(math.log(4.0), requires_grad=True)
    z = 1.0 + torch.exp(0.5 * logvar) * -0.5
    z.backward()
    quiz.expect(student, "Q5", logvar.grad.item(), abs_tol=TOL)


@grade_cell("quiz_generative_q6")
@points(1)
def test_q6(student):
    """Q6: the reparameterisation makes the sample differentiable in mu and sigma."""
    quiz.expect(student, "Q6", "a")


@grade_cell("quiz_generative_q7")
@points(1)
def test_q7(student):
    """Q7: log p(x) - ELBO = KL(q(z | x) || p(z | x))."""
    quiz.expect(student, "Q7", -100.0 - (-104.5), abs_tol=TOL)


@grade_cell("quiz_generative_q8")
@points(1)
def test_q8(student):
    """Q8: D*(x) = p_data / (p_data + p_g) at densities 0.3 and 0.1."""
    quiz.expect(student, "Q8", 0.3 / (0.3 + 0.1), abs_tol=TOL)


@grade_cell("quiz_generative_q9")
@points(1)
def test_q9(student):
    """Q9: with p_g = p_data, D* = 1/2 everywhere, so V = 2 log(1/2) = -log 4."""
    d_star = 0.5 / (0.5 + 0.5)
    quiz.expect(student, "Q9", math.log(d_star) + math.log(1 - d_star), abs_tol=TOL)


@grade_cell("quiz_generative_q10")
@points(1)
def test_q10(student):
    """Q10: disjoint supports: JS = log 2 (computed on two disjoint discrete distributions)."""
    p, q = torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.25, 0.75])
    quiz.expect(student, "Q10", js_discrete(p, q), abs_tol=TOL)


@grade_cell("quiz_generative_q11")
@points(1)
def test_q11(student):
    """Q11: JS between Bernoulli(1) and Bernoulli(0.5)."""
    p = torch.tensor([1.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    quiz.expect(student, "Q11", js_discrete(p, q), abs_tol=TOL)


@grade_cell("quiz_generative_q12")
@points(1)
def test_q12(student):
    """Q12: mode collapse is a generator covering few modes of the data."""
    quiz.expect(student, "Q12", "c")
