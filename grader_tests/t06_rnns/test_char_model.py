"""Hidden tests for Exercise 6, irnn, Exercise 9, CharRNN, and Exercise 10, generate.

irnn is marked by what it builds (an nn.RNN with the ReLU, W_hh = scale * I, zero biases, a
random W_ih) and by what that does: fed positive inputs through a 1-unit network with input
weight 1 it adds them up. CharRNN gets the grader's weights loaded by name (`embed.*`, `rnn.*`,
`head.*`) and must give the logits computed here with torch's modules, whole and in pieces.
generate runs models of the grader's, so a mistake in Exercise 9 does not cost Exercise 10: a
model that counts the characters it has read (greedy decoding must continue the count, which
only a carried state can do), and a CharRNN built here from torch's modules, whose samples must
be those of torch.multinomial on the same generator, as the exercise prescribes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# --------------------------------------------------------------------------- Exercise 6


def probe_irnn(ns, input_size, hidden_size, scale, batch_first, x=None, w_ih=None):
    kwargs = {} if scale is None else {"scale": scale}
    if batch_first:
        kwargs["batch_first"] = True
    r = ns["irnn"](input_size, hidden_size, **kwargs)
    if not isinstance(r, nn.RNN):
        return {"type": type(r).__name__}
    reply = {
        "type": "RNN",
        "nonlinearity": r.nonlinearity,
        "layers": r.num_layers,
        "batch_first": r.batch_first,
        "w_hh": r.weight_hh_l0.detach().clone(),
        "biases": (r.bias_ih_l0 + r.bias_hh_l0).detach().clone(),
        "w_ih": r.weight_ih_l0.detach().clone(),
        "requires_grad": all(p.requires_grad for p in r.parameters()),
    }
    if x is not None:
        with torch.no_grad():
            r.weight_ih_l0.copy_(w_ih)
            reply["out"] = r(x)[0]
    return reply


@grade_cell("t06_rnns_irnn_check")
@points(1)
def test_irnn_structure(student):
    """nn.RNN with nonlinearity 'relu', one layer, W_hh = scale * I, zero biases, W_ih random,
    every parameter still trainable; scale defaults to 1 and batch_first is passed on."""
    for size, scale, batch_first in [((3, 5), 0.7, False), ((2, 8), None, True)]:
        reply = student.run(
            probe_irnn,
            input_size=size[0],
            hidden_size=size[1],
            scale=scale,
            batch_first=batch_first,
        )
        what = f"irnn{size}" + ("" if scale is None else f", scale={scale}")
        assert reply["type"] == "RNN", f"{what} returned a {reply['type']}, not an nn.RNN"
        assert reply["nonlinearity"] == "relu", f"{what}: nonlinearity {reply['nonlinearity']!r}"
        assert reply["layers"] == 1, f"{what}: {reply['layers']} layers, expected 1"
        assert reply["batch_first"] == batch_first, f"{what}: batch_first={reply['batch_first']}"
        want = (1.0 if scale is None else scale) * torch.eye(size[1])
        close(reply["w_hh"], want, f"{what}: weight_hh_l0", "scale x the identity", atol=1e-7)
        close(reply["biases"], torch.zeros(size[1]), f"{what}: bias_ih_l0 + bias_hh_l0", atol=0.0)
        assert bool(reply["w_ih"].abs().sum() > 0), f"{what}: weight_ih_l0 is all zeros"
        assert reply["requires_grad"], f"{what}: a parameter no longer requires gradients"


@grade_cell("t06_rnns_irnn_check")
@points(1)
def test_irnn_adds_up_positive_inputs(student):
    """A 1-unit IRNN with input weight 1 returns the running sum of positive inputs (scale 1),
    and with scale 0.5 the discounted sum h_t = 0.5 h_(t-1) + x_t."""
    x = torch.rand(7, 2, 1, generator=torch.Generator().manual_seed(60)) + 0.1
    for scale in (1.0, 0.5):
        reply = student.run(
            probe_irnn,
            input_size=1,
            hidden_size=1,
            scale=scale,
            batch_first=False,
            x=x,
            w_ih=torch.ones(1, 1),
        )
        assert reply["type"] == "RNN", f"irnn(1, 1) returned a {reply['type']}, not an nn.RNN"
        want, h = [], torch.zeros(2, 1)
        for t in range(7):
            h = scale * h + x[t]
            want.append(h)
        close(
            reply["out"],
            torch.stack(want),
            f"1-unit irnn(scale={scale}) on positive inputs",
            "the running (discounted) sum",
            atol=1e-6,
        )


# --------------------------------------------------------------------------- Exercise 9


def probe_char_rnn(ns, vocab, embed, hidden, cell, state, x, split):
    m = ns["CharRNN"](vocab, embed_size=embed, hidden_size=hidden, cell=cell)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    reply = {
        "shapes": shapes,
        "rnn": type(getattr(m, "rnn", None)).__name__,
        "batch_first": bool(getattr(getattr(m, "rnn", None), "batch_first", False)),
    }
    if state is None or shapes != {k: tuple(v.shape) for k, v in state.items()}:
        return reply
    m.load_state_dict(state)
    m.eval()
    with torch.no_grad():
        whole = m(x)
        if not (isinstance(whole, tuple | list) and len(whole) == 2):
            reply["logits"] = f"a {type(whole).__name__}, not a pair (logits, state)"
            return reply
        reply["logits"] = whole[0]
        first, carried = m(x[:, :split])
        second, _ = m(x[:, split:], carried)
        reply["pieces"] = torch.cat([first, second], dim=1)
    return reply


def reference_char_rnn(vocab, embed, hidden, cell, seed):
    torch.manual_seed(seed)
    modules = {
        "embed": nn.Embedding(vocab, embed),
        "rnn": CELLS[cell](embed, hidden, batch_first=True),
        "head": nn.Linear(hidden, vocab),
    }
    state = {
        f"{name}.{k}": v.detach().clone()
        for name, mod in modules.items()
        for k, v in mod.state_dict().items()
    }
    return modules, state


def reference_logits(modules, x):
    with torch.no_grad():
        return modules["head"](modules["rnn"](modules["embed"](x))[0])


@grade_cell("t06_rnns_char_rnn_check")
@points(1)
def test_char_rnn_modules(student):
    """embed, rnn (the right class, batch_first=True) and head, with the parameter shapes of
    torch's modules, for the three cell types."""
    for cell, cls in CELLS.items():
        _, state = reference_char_rnn(15, 6, 10, cell, 80)
        reply = student.run(
            probe_char_rnn, vocab=15, embed=6, hidden=10, cell=cell, state=None, x=None, split=0
        )
        what = f"CharRNN(15, embed_size=6, hidden_size=10, cell={cell!r})"
        assert reply["rnn"] == cls.__name__, (
            f"{what}.rnn is a {reply['rnn']}, not nn.{cls.__name__}"
        )
        assert reply["batch_first"], f"{what}.rnn does not have batch_first=True"
        want = {k: tuple(v.shape) for k, v in state.items()}
        assert reply["shapes"] == want, f"{what}: parameters {reply['shapes']}, expected {want}"


@grade_cell("t06_rnns_char_rnn_check")
@points(1)
def test_char_rnn_logits(student):
    """With the grader's weights: logits of shape (N, T, V) equal head(rnn(embed(x)))."""
    x = torch.randint(0, 15, (4, 9), generator=torch.Generator().manual_seed(81))
    for cell in CELLS:
        modules, state = reference_char_rnn(15, 6, 10, cell, 82)
        reply = student.run(
            probe_char_rnn, vocab=15, embed=6, hidden=10, cell=cell, state=state, x=x, split=4
        )
        what = f"CharRNN(cell={cell!r}) logits for x of shape (4, 9)"
        assert "logits" in reply, f"{what}: the grader's weights do not load: {reply['shapes']}"
        close(reply["logits"], reference_logits(modules, x), what, "head(rnn(embed(x)))", atol=1e-5)


@grade_cell("t06_rnns_char_rnn_check")
@points(1)
def test_char_rnn_state_carries_over(student):
    """Reading x[:, :s] and then x[:, s:] with the returned state gives the logits of reading x
    at once (LSTM: the state is the pair (h_n, c_n))."""
    x = torch.randint(0, 15, (3, 20), generator=torch.Generator().manual_seed(83))
    for cell in ("lstm", "gru"):
        modules, state = reference_char_rnn(15, 6, 10, cell, 84)
        reply = student.run(
            probe_char_rnn, vocab=15, embed=6, hidden=10, cell=cell, state=state, x=x, split=13
        )
        what = f"CharRNN(cell={cell!r}): x[:, :13] then x[:, 13:] with the state"
        assert "pieces" in reply, f"{what}: could not run ({reply.get('logits', reply['shapes'])})"
        close(
            reply["pieces"],
            reference_logits(modules, x),
            what,
            "the logits of x at once",
            atol=1e-5,
        )


# --------------------------------------------------------------------------- Exercise 10


def probe_generate(ns, state, vocab, embed, hidden, prompt, n_new, temperature, seed):
    class Reference(nn.Module):  # the exercise-9 model, built from torch's modules here
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.rnn = nn.LSTM(embed, hidden, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x, s=None):
            out, s = self.rnn(self.embed(x), s)
            return self.head(out), s

    model = Reference()
    model.load_state_dict(state)
    model.eval()
    calls = []
    original = model.forward

    def counted(x, s=None):
        calls.append(tuple(x.shape))
        return original(x, s)

    model.forward = counted
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    out = ns["generate"](model, list(prompt), n_new, temperature=temperature, generator=gen)
    return {"out": list(out) if isinstance(out, list | tuple) else repr(out)[:80], "calls": calls}


def _lstm_state(vocab, embed, hidden, seed):
    torch.manual_seed(seed)
    modules = {
        "embed": nn.Embedding(vocab, embed),
        "rnn": nn.LSTM(embed, hidden, batch_first=True),
        "head": nn.Linear(hidden, vocab),
    }
    return modules, {
        f"{n}.{k}": v.detach().clone()
        for n, m in modules.items()
        for k, v in m.state_dict().items()
    }


def _reference_sample(modules, prompt, n_new, temperature, seed):
    """Sampling as the exercise prescribes, rerunning the model on the whole sequence each step."""
    gen = torch.Generator().manual_seed(seed)
    seq, new = list(prompt), []
    with torch.no_grad():
        for _ in range(n_new):
            logits = reference_logits(modules, torch.tensor([seq]))[0, -1]
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
            new.append(nxt)
            seq.append(nxt)
    return new


def probe_generate_counter(ns, vocab, prompt, n_new):
    """A model whose next character is the number of characters it has read (mod vocab), and
    whose state is that count: only a generate that passes the state on continues the count."""

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(()))

        def forward(self, x, state=None):
            seen = torch.zeros((), dtype=torch.long) if state is None else state
            position = seen + torch.arange(1, x.shape[1] + 1)
            logits = 20.0 * F.one_hot(position % vocab, vocab).float() + self.unused
            return logits.expand(x.shape[0], -1, -1), seen + x.shape[1]

    model, calls = Counter(), []
    original = model.forward

    def counted(x, state=None):
        calls.append(tuple(x.shape))
        return original(x, state)

    model.forward = counted
    out = ns["generate"](model, list(prompt), n_new, temperature=0.0)
    return {"out": list(out) if isinstance(out, list | tuple) else repr(out)[:80], "calls": calls}


@grade_cell("t06_rnns_generate_check")
@points(1)
def test_generate_greedy_and_state(student):
    """Temperature 0 with a counting model (its state is the number of characters read): from a
    prompt of 5 the greedy continuation is 5, 6, 7, ... (mod 9); the model reads the prompt in
    one call, then one new character per call."""
    reply = student.run(probe_generate_counter, vocab=9, prompt=[3, 1, 4, 1, 5], n_new=14)
    want = [(5 + i) % 9 for i in range(14)]
    assert reply["out"] == want, (
        f"generate(temperature=0) with a model that counts what it has read gave {reply['out']}, "
        f"expected {want}: the state must be passed from each call to the next"
    )
    calls = reply["calls"]
    assert calls[:1] == [(1, 5)] and all(c == (1, 1) for c in calls[1:]), (
        f"generate called the model on inputs of shapes {calls[:4]}...: it should read the prompt "
        "once, then one new character per call, carrying the state"
    )


@grade_cell("t06_rnns_generate_check")
@points(1)
def test_generate_sampling(student):
    """Temperatures 1 and 0.5 with a seeded generator: the same characters as torch.multinomial
    on softmax(logits / temperature) with that generator."""
    modules, state = _lstm_state(11, 5, 12, 91)
    for temperature, seed in [(1.0, 92), (0.5, 93)]:
        reply = student.run(
            probe_generate,
            state=state,
            vocab=11,
            embed=5,
            hidden=12,
            prompt=[2, 7],
            n_new=20,
            temperature=temperature,
            seed=seed,
        )
        want = _reference_sample(modules, [2, 7], 20, temperature, seed)
        assert reply["out"] == want, (
            f"generate(temperature={temperature}) with a seeded generator gave {reply['out']}, "
            f"expected {want}"
        )
