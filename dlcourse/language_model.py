"""A tiny GPT-style language model, its training loop and its evaluation, for the tokenisation
and scaling tutorial (T08).

The model is the decoder of "Attention is all you need" as GPT-2 arranges it: token and
position embeddings, pre-LayerNorm blocks of causal multi-head self-attention and a 4x MLP, a
final LayerNorm, and an output layer that shares its weights with the token embedding. It is
small enough to train for a few hundred steps on a laptop CPU in seconds; `count_parameters`
separates the embedding parameters from the rest, as scaling-law papers do (Kaplan et al.,
2020, count "non-embedding" parameters).

Everything takes token ids as a 1-D int64 tensor (characters or BPE tokens alike) and runs on
the device the model is on.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "TinyGPT",
    "count_parameters",
    "evaluate_lm",
    "generate",
    "random_windows",
    "train_lm",
]


class Block(nn.Module):
    """One pre-LayerNorm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer: (B, T) token ids -> (B, T, vocab_size) next-token logits.

    `context` is the longest sequence it reads (the size of the position embedding). The output
    layer is the token embedding transposed (weight tying, as in GPT-2).
    """

    def __init__(
        self, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
        context: int = 64,
    ):  # fmt: skip
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight
        self.apply(self._init)
        for block in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2 * layers)
            for layer in (block.proj, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"a sequence of {t} tokens is longer than the context {self.context}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def count_parameters(model: nn.Module, embeddings: bool = True) -> int:
    """Number of parameters (shared ones once); `embeddings=False` leaves out the token and
    position embeddings (and so the tied output layer): the "non-embedding" count N of
    scaling-law papers."""
    skip = set()
    if not embeddings:
        embeds = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        skip = {id(p) for m in embeds for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def random_windows(
    ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `context` tokens and the same windows shifted by one
    (the next-token targets), both (batch_size, context) int64 tensors on the ids' device."""
    if len(ids) <= context:
        raise ValueError(f"{len(ids)} tokens are too few for windows of {context} + 1")
    starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    chunk = ids[(starts[:, None] + offsets).to(ids.device)]
    return chunk[:, :-1], chunk[:, 1:]


def train_lm(
    model: TinyGPT, ids: torch.Tensor, steps: int, batch_size: int = 32, lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:  # fmt: skip
    """AdamW on random windows of `ids` (a 1-D int64 tensor) for `steps` steps; returns the
    training loss (mean cross-entropy in nats per token) of every step.

    The learning rate warms up linearly over the first 10% of the steps, then decays along a
    cosine to a tenth of `lr`. `seed` fixes the windows, so two models see the same data.
    """
    dev = next(model.parameters()).device
    ids = ids.to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    warmup = max(1, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    losses = []
    for _ in range(steps):
        x, y = random_windows(ids, batch_size, model.context, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate_lm(model: TinyGPT, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy (nats per predicted token) of `ids` cut into consecutive windows of
    the model's context: every token after the first is predicted exactly once, from the
    tokens before it in its window."""
    dev = next(model.parameters()).device
    ids = ids.to(dev)
    c = model.context
    n = (len(ids) - 1) // c
    if n == 0:
        raise ValueError(f"{len(ids)} tokens are too few for one window of {c} + 1")
    model.eval()
    total = 0.0
    for start in range(0, n, batch_size):
        rows = torch.arange(start, min(n, start + batch_size), device=dev)
        idx = rows[:, None] * c + torch.arange(c + 1, device=dev)
        chunk = ids[idx]
        logits = model(chunk[:, :-1]).flatten(0, 1)
        total += F.cross_entropy(logits, chunk[:, 1:].flatten(), reduction="sum").item()
    return total / (n * c)


@torch.no_grad()
def generate(
    model: TinyGPT, prompt: list[int], n_new: int, temperature: float = 1.0, seed: int = 0
) -> list[int]:
    """The prompt's ids followed by `n_new` ids sampled one at a time (softmax of the logits
    divided by `temperature`), each from the last `context` tokens."""
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    out = list(prompt)
    for _ in range(n_new):
        idx = torch.tensor([out[-model.context :]], device=dev)
        probs = torch.softmax(model(idx)[0, -1].float().cpu() / temperature, dim=0)
        out.append(int(torch.multinomial(probs, 1, generator=gen)))
    return out
