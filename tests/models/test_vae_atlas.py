"""The ATLAS VAE with IAF, on tiny networks and atlas-like stand-in data."""

import json
import math

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family, load_model
from caloforge.models.vae_atlas import ATLASVAE, ATLASVAEConfig, _IAFStep
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS
from tests.conftest import write_atlas_like

TINY = TINY_MODELS["vae-atlas"]


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    return write_atlas_like(tmp_path_factory.mktemp("atlas") / "atlas.h5", 300, seed=1)


def fitted(path, **options):
    data = ShowerFile(path).read()
    cfg = ATLASVAEConfig(
        detector=load_detector("atlas-like").to_yaml(),
        conditions=("energy", "eta"),
        **(TINY | options),
    )
    return ATLASVAE.create(cfg, data.showers, data.incident_energies[:, 0], data.conditions), data


def test_registry_and_defaults():
    assert get_family("vae-atlas") is ATLASVAE
    cfg = ATLASVAEConfig(detector=load_detector("atlas-like").to_yaml(), conditions=("energy",))
    model = ATLASVAE(cfg)
    assert len(model.iaf) == cfg.iaf_steps == 4
    widths = [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 128, 128, 266]


def test_iaf_step_is_autoregressive_with_the_log_determinant_it_reports():
    torch.manual_seed(0)
    step = _IAFStep(latent=4, context=2, hidden=(8, 8))
    z, h = torch.randn(1, 4), torch.randn(1, 2)
    jacobian = torch.autograd.functional.jacobian(lambda v: step(v, h)[0], z)[0, :, 0, :]
    assert torch.all(jacobian.triu(1) == 0)  # z'_i depends on z_j, j <= i only
    _, log_det = step(z, h)
    assert torch.allclose(log_det, torch.logdet(jacobian), atol=1e-5)


def test_decoding_uses_the_decoder_alone(atlas_file):
    model, data = fitted(atlas_file)
    c = torch.as_tensor(data.conditions[:5], dtype=torch.float32)
    noise = model.noise(5, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a = model.decode(noise, c)
        model.iaf[0].made[0].weight.add_(1.0)  # the posterior's flow plays no part
        b = model.decode(noise, c)
    assert a.shape == (5, 266) and torch.equal(a, b) and a.min() >= 0


@pytest.mark.parametrize("iaf_steps", [0, 2])
def test_training_lowers_the_loss_and_gives_posterior_samples(atlas_file, iaf_steps):
    model, data = fitted(atlas_file, iaf_steps=iaf_steps)
    batch = model.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    optimizers = model.optimizers()
    g = torch.Generator().manual_seed(0)
    first = model.train_step([batch], optimizers, g, 0)
    for step in range(1, 40):
        last = model.train_step([batch], optimizers, g, step)
    assert last["loss"] < first["loss"] and np.isfinite(last["kl"])
    z = model.aggregated_posterior(batch, torch.Generator().manual_seed(1))
    assert z.shape == (300, 3) and torch.isfinite(z).all()


def test_train_generate_reload(atlas_file, tmp_path):
    settings = TrainingSettings(steps=4, batch_size=32, checkpoint_every=2, eval_every=2)
    train("vae-atlas", atlas_file, tmp_path / "m", settings=settings, model_options=TINY)
    model = load_model(tmp_path / "m")
    showers = model.sample(ShowerFile(atlas_file).read(0, 5).conditions, torch.Generator())
    assert showers.shape == (5, 266) and np.isfinite(showers).all()


@pytest.mark.parametrize("energy_sigma", [None, 0.05])
def test_the_total_energy_term_compares_standardised_responses(atlas_file, energy_sigma):
    model, data = fitted(atlas_file, energy_sigma=energy_sigma)
    n = 16
    batch = model.to_training(data.showers[:n], data.incident_energies[:n, 0], data.conditions[:n])
    with torch.no_grad():  # the decoder gives shower 0 whatever z and the conditions
        last = model.decoder[-1]
        last.weight.zero_()
        last.bias.copy_(batch.showers[0])
    logs = model.train_step([batch], model.optimizers(), torch.Generator().manual_seed(0), 0)
    if energy_sigma is None:
        assert "reconstruction_energy" not in logs
        return
    response = data.showers[:n].sum(axis=1) / data.incident_energies[:n, 0]
    std = model.config.response[1]
    miss = (response[0] - response) / std
    expected = 0.5 * np.mean((miss / energy_sigma) ** 2)
    assert logs["reconstruction_energy"] == pytest.approx(expected, rel=1e-3)


def test_generation_draws_z_from_the_conditional_prior(atlas_file):
    model, data = fitted(atlas_file)
    c = torch.as_tensor(model.condition_transform.forward(data.conditions[:4]), dtype=torch.float32)
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        standard = model.generate_transformed(noise, c)  # a new prior is N(0, 1)
        assert torch.allclose(standard, model._decode(noise, c))
        model.prior[-1].bias.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0, math.log(2), -1.0]))
        shifted = model.generate_transformed(noise, c)
        sigma = torch.tensor([1.0, 2.0, math.exp(-1.0)])
        expected = model._decode(torch.tensor([1.0, -2.0, 0.5]) + sigma * noise, c)
    assert torch.allclose(shifted, expected, atol=1e-6)
    assert fitted(atlas_file, prior="standard")[0].prior is None


def test_the_learning_rate_halves_every_half_life(atlas_file):
    model, data = fitted(atlas_file, lr_half_life=100)
    batch = model.to_training(data.showers[:8], data.incident_energies[:8, 0], data.conditions[:8])
    optimizers = model.optimizers()
    for step, expected in [(0, 1e-3), (100, 5e-4), (250, 1e-3 * 0.5**2.5)]:
        model.train_step([batch], optimizers, torch.Generator().manual_seed(0), step)
        assert optimizers["vae"].param_groups[0]["lr"] == pytest.approx(expected)


def test_the_prior_log_density_is_a_diagonal_gaussian(atlas_file):
    model, data = fitted(atlas_file)
    c = torch.as_tensor(model.condition_transform.forward(data.conditions[:5]), dtype=torch.float32)
    with torch.no_grad():
        model.prior[-1].bias.copy_(torch.tensor([0.5, -1.0, 2.0, -0.3, 0.7, 0.1]))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    mean, log_sigma = model.prior_parameters(c)
    expected = torch.distributions.Normal(mean, log_sigma.exp()).log_prob(z).sum(dim=1)
    assert torch.allclose(model.prior_log_prob(z, c), expected, atol=1e-5)


def test_an_older_model_directory_loads_as_it_was_written(atlas_file, tmp_path):
    # Written before prior, energy_sigma and lr_half_life existed: N(0, 1), cells alone.
    old = {"prior": "standard", "energy_sigma": None, "lr_half_life": None}
    settings = TrainingSettings(steps=2, batch_size=32, checkpoint_every=2, eval_every=2)
    train("vae-atlas", atlas_file, tmp_path / "m", settings=settings, model_options=TINY | old)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in config.items() if k not in old}))
    model = load_model(tmp_path / "m")
    assert model.prior is None and model.config.energy_sigma is None
    assert model.config.lr_half_life is None
    config = json.loads(path.read_text()) | {"prior": "conditional"}  # weights lack the prior
    path.write_text(json.dumps(config))
    with pytest.raises(CaloforgeError, match="weights do not fit its config: Missing key"):
        load_model(tmp_path / "m")
