"""The ATLAS WGAN-GP with its energy critic, on tiny networks and atlas-like stand-in data."""

import json

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import families, get_family, load_model
from caloforge.models.common import gradient_penalty
from caloforge.models.wgan_atlas import ATLASWGAN, ATLASWGANConfig
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS
from tests.conftest import write_atlas_like

TINY = TINY_MODELS["wgan-gp-atlas"]


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory):
    return write_atlas_like(tmp_path_factory.mktemp("atlas") / "atlas.h5", 300, seed=1)


def fitted(path, **options):
    data = ShowerFile(path).read()
    cfg = ATLASWGANConfig(
        detector=load_detector("atlas-like").to_yaml(),
        conditions=("energy", "eta"),
        **(TINY | options),
    )
    return ATLASWGAN.create(cfg, data.showers, data.incident_energies[:, 0], data.conditions), data


def test_registry_and_seed_defaults():
    assert get_family("wgan-gp-atlas") is ATLASWGAN and "wgan-gp-atlas" in families()
    cfg = ATLASWGANConfig(detector=load_detector("atlas-like").to_yaml(), conditions=("energy",))
    model = ATLASWGAN(cfg)
    widths = [m.out_features for m in model.generator if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 128, 128, 266] and cfg.energy_critic and cfg.gp_lambda == 10
    assert cfg.energy_penalty == "one-sided"
    with pytest.raises(CaloforgeError, match="conditioned on energy"):
        ATLASWGAN(cfg.model_copy(update={"conditions": ("eta",)}))


def test_decode_is_deterministic_and_non_negative(atlas_file):
    model, data = fitted(atlas_file)
    c = torch.as_tensor(data.conditions[:6], dtype=torch.float32)
    noise = model.noise(6, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = model.decode(noise, c), model.decode(noise, c)
    assert a.shape == (6, 266) and torch.equal(a, b) and a.min() >= 0


def test_energy_critic_sees_the_standardised_response(atlas_file):
    model, data = fitted(atlas_file)
    batch = model.to_training(
        data.showers[:20], data.incident_energies[:20, 0], data.conditions[:20]
    )
    response = data.showers[:20].sum(axis=1) / data.incident_energies[:20, 0]
    mean, std = model.config.response
    expected = (response - mean) / std
    got = model.response_input(batch.showers)[:, 0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("energy_critic", [True, False])
def test_train_step_updates_both_critics_or_one(atlas_file, energy_critic):
    model, data = fitted(atlas_file, energy_critic=energy_critic)
    batch = model.to_training(
        data.showers[:32], data.incident_energies[:32, 0], data.conditions[:32]
    )
    optimizers = model.optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logs = model.train_step([batch, batch], optimizers, torch.Generator().manual_seed(0), 0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("generator.") for k in changed)
    assert any(k.startswith("critic.") for k in changed)
    assert any(k.startswith("energy_critic.") for k in changed) == energy_critic
    assert ("wasserstein_energy" in logs) == energy_critic == ("generator_energy" in logs)


def test_the_energy_critic_alone_moves_the_generator(atlas_file):
    # Its gradient reaches the generator through the sum of the cells.
    model, data = fitted(atlas_file)
    c = torch.as_tensor(model.condition_transform.forward(data.conditions[:8]), dtype=torch.float32)
    fake = model.generate_transformed(torch.randn(8, 4), c)
    model.energy_critic(model.response_input(fake), c).mean().backward()
    assert model.generator[0].weight.grad.abs().sum() > 0


def test_train_generate_reload(atlas_file, tmp_path):
    settings = TrainingSettings(steps=4, batch_size=32, checkpoint_every=2, eval_every=2)
    train("wgan-gp-atlas", atlas_file, tmp_path / "m", settings=settings, model_options=TINY)
    model = load_model(tmp_path / "m")
    showers = model.sample(ShowerFile(atlas_file).read(0, 5).conditions, torch.Generator())
    assert showers.shape == (5, 266) and np.isfinite(showers).all()


@pytest.mark.parametrize("one_sided", [False, True])
def test_a_one_input_critic_turns_round_only_with_the_one_sided_penalty(one_sided):
    # A linear critic w·x of E_tot that starts the wrong way round (w = -1), reals above the
    # fakes: the two-sided penalty holds it at w ≈ -1 + Δ/2λ, the one-sided one lets it turn.
    real, fake = torch.full((64, 1), 1.0), torch.full((64, 1), -1.0)
    critic = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        critic.weight.fill_(-1.0)
    optimizer = torch.optim.SGD(critic.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(500):
        distance = critic(real).mean() - critic(fake).mean()
        penalty = gradient_penalty(critic, real, fake, generator=g, one_sided=one_sided)
        optimizer.zero_grad()
        (10 * penalty - distance).backward()
        optimizer.step()
    assert (critic.weight.item() > 0) == one_sided


def test_an_older_model_directory_resumes_with_the_two_sided_penalty(atlas_file, tmp_path):
    settings = TrainingSettings(steps=2, batch_size=32, checkpoint_every=2, eval_every=2)
    train("wgan-gp-atlas", atlas_file, tmp_path / "m", settings=settings, model_options=TINY)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    del config["energy_penalty"]  # written before the option existed
    path.write_text(json.dumps(config))
    assert load_model(tmp_path / "m").config.energy_penalty == "two-sided"
