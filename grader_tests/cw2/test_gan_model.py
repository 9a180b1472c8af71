"""Hidden tests for the DCGAN's models (grade cell cw2_gan_model_hidden): limits, interface,
initialisation, and the range of 10,000 generated samples."""

import torch

from dlcourse.grading import points, public

GRADE_CELL = "cw2_gan_model_hidden"
MAX_PARAMETERS = 25_000_000  # generator + discriminator, "at most"
# Background pixels are -1 and the brightest +1: samples must reach both ends of [-1, 1]. A
# generator that outputs [0, 1] images (sigmoid, or a missing rescale) fails here.
REACH = 0.9


def probe_interface(ns):
    g = ns.load_model("Generator", "gan_generator.pt")
    d = ns.load_model("Discriminator", "gan_discriminator.pt")
    z = torch.randn(4, ns["latent_size"], 1, 1)
    with torch.no_grad():
        fake = g(z)
        score = d(fake)
    return {"fake": list(fake.shape), "score": score.numel()}


def probe_parameters(ns):
    return sum(
        p.numel() for m in (ns["Generator"](), ns["Discriminator"]()) for p in m.parameters()
    )


def probe_weights_init(ns):
    stats = []
    for cls in ("Generator", "Discriminator"):
        torch.manual_seed(0)
        model = ns[cls]()
        model.apply(ns["weights_init"])
        for m in model.modules():
            if (
                isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
                and m.weight.numel() >= 1000
            ):
                stats.append(["conv", float(m.weight.mean()), float(m.weight.std())])
            elif isinstance(m, torch.nn.BatchNorm2d) and m.weight is not None:
                stats.append(["batchnorm", float(m.weight.mean()), float(m.weight.std())])
    return stats


@public
@points(2)
def test_gan_interface(student):
    """The weights load; G maps (B, latent_size, 1, 1) to (B, 1, 32, 32); D scores each image."""
    r = student.run(probe_interface)
    assert r["fake"] == [4, 1, 32, 32], f"Generator gave {r['fake']} for 4 noise vectors"
    assert r["score"] == 4, f"Discriminator gave {r['score']} numbers for 4 images, not 4"


@public
@points(4)
def test_gan_parameter_limit(student, parameter_count):
    """Generator + discriminator have at most 25,000,000 parameters (classes and weight files)."""
    in_files = sum(
        parameter_count(student.state_dict(f)) for f in ("gan_generator.pt", "gan_discriminator.pt")
    )
    n = max(student.run(probe_parameters), in_files)
    assert n <= MAX_PARAMETERS, f"generator + discriminator have {n:,} parameters; limit 25,000,000"


@points(2)
def test_weights_init(student):
    """weights_init draws conv weights from N(0, 0.02) and batch-norm scales from N(1, 0.02)."""
    stats = student.run(probe_weights_init)
    convs = [s for s in stats if s[0] == "conv"]
    assert convs, "no convolution with 1,000 or more weights found in Generator or Discriminator"
    for kind, mean, std in stats:
        centre = 0.0 if kind == "conv" else 1.0
        assert abs(mean - centre) < 0.01 and 0.014 < std < 0.026, (
            f"after weights_init a {kind} layer has weights with mean {mean:.4f} and std "
            f"{std:.4f}; expected mean {centre:g} and std 0.02"
        )


@points(4)
def test_generator_range(student, gan_samples):
    """10,000 samples lie in [-1, 1] and reach both ends (background -1, brightest pixels +1)."""
    lo, hi = gan_samples.min().item(), gan_samples.max().item()
    assert lo >= -1 - 1e-5 and hi <= 1 + 1e-5, f"samples span [{lo:.3f}, {hi:.3f}], not [-1, 1]"
    assert lo <= -REACH and hi >= REACH, (
        f"samples span [{lo:.3f}, {hi:.3f}]: images scaled to [-1, 1] reach below -{REACH} "
        f"(background) and above {REACH}; is the output in [0, 1]?"
    )
