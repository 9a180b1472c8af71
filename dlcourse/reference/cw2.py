"""Train CW2's reference models and the course classifier; measure the grading calibration.

`dlcourse train-reference cw2 [--only classifier|vae|gan] [--vae-epochs N] [--gan-epochs N]`

- the course Fashion-MNIST classifier (`dlcourse.classifier`), whose features FID, KID and class
  coverage are computed in;
- the reference VAE from the instructor notebook, and a pytorch/examples-style MLP VAE trained for
  the same CPU time on the same data, so the notebook's architecture is shown to be worth it;
- the reference DCGAN from the instructor notebook, and the calibration the hidden tests' tiers
  come from: real-vs-real (a train subset against the test set), the reference generator, an
  undertrained one, a collapsed one, one with outputs in [0, 1], and uniform noise.

Weights go to weights/ with manifest entries; copies go next to the instructor notebook
(source/cw2/), which is the instructor's own submission for `dlcourse grade`. CPU times are
process CPU time (all threads), which other jobs on a shared machine do not inflate.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import classifier, course, data, device, metrics, notebook, weights

SOURCE = course.ROOT / "source" / "cw2"
NOTEBOOK = SOURCE / "cw2.ipynb"
COMMAND = "dlcourse train-reference cw2"
SAMPLES = 10_000
SAMPLE_SEED = 2024  # the hidden tests draw their noise with this seed too
ELBO_SEED = 0


class MLPVAE(nn.Module):
    """pytorch/examples' MNIST VAE (784-400-20), the baseline the reference must beat."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x.reshape(-1, 784)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))).reshape(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


# --- measurements shared with the hidden tests ----------------------------------------------


@torch.no_grad()
def vae_negative_elbo(model: nn.Module, x: torch.Tensor, seed: int = ELBO_SEED) -> float:
    """Negative ELBO (nats per image) as the grader computes it: encode, one seeded z, decode."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    recons, mus, logvars = [], [], []
    for start in range(0, len(x), 1000):
        mu, logvar = model.encode(x[start : start + 1000])
        eps = torch.randn(mu.shape, generator=g)
        recons.append(model.decode(mu + eps * torch.exp(0.5 * logvar)))
        mus.append(mu)
        logvars.append(logvar)
    return metrics.negative_elbo(torch.cat(recons), x, torch.cat(mus), torch.cat(logvars))


def sample_noise(n: int, latent_size: int, seed: int = SAMPLE_SEED) -> torch.Tensor:
    return torch.randn(n, latent_size, 1, 1, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    generator.eval()
    return torch.cat([generator(z[i : i + 1000]) for i in range(0, len(z), 1000)])


def quality(
    model: classifier.FashionClassifier, samples: torch.Tensor, real_features: torch.Tensor
) -> dict[str, float]:
    """FID, KID and class coverage of samples against real features, as the grader measures."""
    feats, pred = classifier.embed(model, samples)
    return {
        "fid": round(metrics.fid(feats, real_features), 3),
        "kid": round(metrics.kid(feats, real_features), 4),
        "coverage": metrics.class_coverage(pred),
    }


# --- training ---------------------------------------------------------------------------------


def _entry(metric: dict[str, Any], cpu_s: float, wall_s: float) -> dict[str, Any]:
    return {
        "metric": metric,
        "training_time_s": round(wall_s, 1),
        "training_cpu_s": round(cpu_s, 1),
        "device": f"cpu ({torch.get_num_threads()} threads)",
        "command": COMMAND,
    }


def _save(state: dict[str, torch.Tensor], name: str, entry: dict[str, Any]) -> Path:
    path = weights.WEIGHTS_DIR / name
    torch.save(state, path)
    weights.record(path, **entry)
    return path


def train_classifier(ds: data.FashionMNIST, epochs: int) -> classifier.FashionClassifier:
    """Adam, light translation augmentation; test accuracy goes into the manifest."""
    device.seed_everything(0)
    model = classifier.FashionClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=epochs * -(-len(ds.train) // 128)
    )
    x_train = classifier.to_gan_range(ds.train.x)
    g = torch.Generator().manual_seed(0)
    cpu0, wall0 = time.process_time(), time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        for start in range(0, len(order), 128):
            idx = order[start : start + 128]
            x = x_train[idx]
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(x, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model(x), ds.train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            val = metrics.accuracy(model(classifier.to_gan_range(ds.val.x)), ds.val.y)
        print(f"classifier epoch {epoch + 1}: validation accuracy {val:.4f}", flush=True)
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    with torch.no_grad():
        acc = metrics.accuracy(model(classifier.to_gan_range(ds.test.x)), ds.test.y)
    print(f"classifier: test accuracy {acc:.4f} ({wall_s:.0f} s)", flush=True)
    metric = {"test_accuracy": round(acc, 4), "epochs": epochs}
    _save(model.state_dict(), classifier.WEIGHTS_NAME, _entry(metric, cpu_s, wall_s))
    return model


def train_mlp_baseline(
    ds: data.FashionMNIST, cpu_budget_s: float | None = None, epochs: int | None = None
) -> tuple[MLPVAE, int]:
    """pytorch/examples' recipe (Adam 1e-3, batch 128, summed BCE + KL) for a CPU-time budget,
    or for a fixed number of epochs (re-measuring a recorded baseline); returns the epochs run."""
    if (cpu_budget_s is None) == (epochs is None):
        raise ValueError("give either cpu_budget_s or epochs")
    device.seed_everything(0)
    model = MLPVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    cpu0, done = time.process_time(), 0

    def over_budget() -> bool:
        return cpu_budget_s is not None and time.process_time() - cpu0 >= cpu_budget_s

    while not over_budget() and (epochs is None or done < epochs):
        model.train()
        for x, _ in ds.train.batches(128, shuffle=True, generator=g):
            recon, mu, logvar = model(x)
            bce = F.binary_cross_entropy(recon, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            opt.zero_grad()
            ((bce + kl) / len(x)).backward()
            opt.step()
            if over_budget():
                break
        done += 1
    return model, done


def run_vae(ns: dict[str, Any], ds: data.FashionMNIST, epochs: int) -> None:
    device.seed_everything(0)
    model = ns["VAE"](ns["latent_dim"])
    cpu0, wall0 = time.process_time(), time.time()
    history = ns["train_vae"](model, ds.train, ds.test, epochs=epochs)
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    ref = vae_negative_elbo(model, ds.test.x)
    print(f"reference VAE: {ref:.2f} nats/image ({cpu_s:.0f} CPU s, {wall_s:.0f} s)", flush=True)

    base, base_epochs = train_mlp_baseline(ds, cpu_s)
    base_elbo = vae_negative_elbo(base, ds.test.x)
    print(f"MLP baseline, same CPU time: {base_elbo:.2f} ({base_epochs} epochs)", flush=True)

    device.seed_everything(0)
    under = ns["VAE"](ns["latent_dim"])
    ns["train_vae"](under, data.Split(ds.train.x[:12_800], ds.train.y[:12_800]), ds.test, 1)
    under_elbo = vae_negative_elbo(under, ds.test.x)
    untrained = vae_negative_elbo(ns["VAE"](ns["latent_dim"]), ds.test.x)
    print(f"undertrained VAE (100 steps): {under_elbo:.2f}; untrained: {untrained:.2f}", flush=True)

    metric = {
        "test_negative_elbo": round(ref, 2),
        "epochs": epochs,
        "baseline_mlp_negative_elbo": round(base_elbo, 2),
        "baseline_mlp_epochs": base_epochs,
        "undertrained_100_steps_negative_elbo": round(under_elbo, 2),
        "untrained_negative_elbo": round(untrained, 2),
    }
    _save(model.state_dict(), "vae_model.pt", _entry(metric, cpu_s, wall_s))
    shutil.copy(weights.WEIGHTS_DIR / "vae_model.pt", SOURCE / "vae_model.pt")
    torch.save(history, SOURCE / "vae_history.pt")


def run_gan(ns: dict[str, Any], ds: data.FashionMNIST, epochs: int) -> None:
    clf = classifier.load_classifier()
    real, _ = classifier.embed(clf, classifier.to_gan_range(ds.test.x))
    rvr = quality(clf, classifier.to_gan_range(ds.train.x[:SAMPLES]), real)
    print(f"real vs real (train subset vs test): {rvr}", flush=True)

    images = classifier.to_gan_range(ds.train.x)
    torch.manual_seed(0)
    fixed_noise = torch.randn(64, ns["latent_size"], 1, 1)

    def fresh() -> tuple[nn.Module, nn.Module]:
        device.seed_everything(0)
        gen, disc = ns["Generator"](), ns["Discriminator"]()
        gen.apply(ns["weights_init"])
        disc.apply(ns["weights_init"])
        return gen, disc

    gen, disc = fresh()
    cpu0, wall0 = time.process_time(), time.time()
    history = ns["train_gan"](gen, disc, images, epochs, fixed_noise, snapshot_every=500)
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    z = sample_noise(SAMPLES, ns["latent_size"])
    t0 = time.time()
    samples = generate(gen, z)
    gen_s = time.time() - t0
    ref = quality(clf, samples, real)
    print(f"reference generator: {ref} ({wall_s:.0f} s; 10k samples in {gen_s:.1f} s)", flush=True)

    under_g, under_d = fresh()
    ns["train_gan"](under_g, under_d, images[: 128 * 100], 1, fixed_noise, snapshot_every=10**9)
    calibration = {
        "real_vs_real": rvr,
        "reference": ref,
        "undertrained_100_steps": quality(clf, generate(under_g, z), real),
        "collapsed_one_image": quality(clf, samples[:1].expand_as(samples), real),
        "outputs_in_0_1": quality(clf, (samples + 1) / 2, real),
        "uniform_noise": quality(clf, torch.rand(samples.shape) * 2 - 1, real),
    }
    for name, q in calibration.items():
        print(f"  {name:24s} FID {q['fid']:9.3f}  KID {q['kid']:8.4f}  coverage {q['coverage']}")
    metric = {**ref, "epochs": epochs, "sample_seconds_10k": round(gen_s, 2)}
    _save(gen.state_dict(), "gan_generator.pt", {**_entry(metric, cpu_s, wall_s), **calibration})
    _save(disc.state_dict(), "gan_discriminator.pt", _entry({"epochs": epochs}, cpu_s, wall_s))
    for name in ("gan_generator.pt", "gan_discriminator.pt"):
        shutil.copy(weights.WEIGHTS_DIR / name, SOURCE / name)
    torch.save(history, SOURCE / "gan_history.pt")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("classifier", "vae", "gan"), action="append")
    p.add_argument("--classifier-epochs", type=int, default=4)
    p.add_argument("--vae-epochs", type=int, help="default: the notebook's VAE_EPOCHS")
    p.add_argument("--gan-epochs", type=int, help="default: the notebook's GAN_EPOCHS")
    args = p.parse_args(argv)
    parts = args.only or ["classifier", "vae", "gan"]
    if data.smoke_mode():
        print("error: unset DLCOURSE_SMOKE: reference weights need the full data", file=sys.stderr)
        return 2
    ns = notebook.load_trusted(NOTEBOOK)
    ds = data.load_fashion_mnist(smoke=False)
    if "classifier" in parts:
        train_classifier(ds, args.classifier_epochs)
    if "vae" in parts:
        run_vae(ns, ds, args.vae_epochs or ns["VAE_EPOCHS"])
    if "gan" in parts:
        run_gan(ns, ds, args.gan_epochs or ns["GAN_EPOCHS"])
    return 0
