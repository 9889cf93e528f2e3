import json

import numpy as np
import pytest
import torch

from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import families, get_family, load_model
from caloforge.models.wgan_lhcb import LateralProfile, LHCbWGAN, LHCbWGANConfig, _fit_resolution
from tests.conftest import TINY

TINY_WGAN = TINY["wgan-gp-lhcb"]

CONDITIONS = ("px", "py", "pz", "x", "y")


def config(detector="lhcb-ecal", **options):
    return LHCbWGANConfig(
        detector=load_detector(detector).to_yaml(), conditions=CONDITIONS, **(TINY_WGAN | options)
    )


def fitted(rng):
    showers = rng.exponential(5.0, (64, 900)).astype(np.float32)
    showers[rng.uniform(size=showers.shape) < 0.8] = 0
    conditions = np.column_stack(
        [
            rng.normal(0, 1e3, 64),
            rng.normal(0, 1e3, 64),
            rng.uniform(1e3, 1e5, 64),
            rng.uniform(-5, 5, 64),
            rng.uniform(-5, 5, 64),
        ]
    )
    return LHCbWGAN.create(config(), showers, conditions[:, 2], conditions), conditions


def test_registry():
    assert "wgan-gp-lhcb" in families()
    assert get_family("wgan-gp-lhcb") is LHCbWGAN
    with pytest.raises(CaloforgeError, match="unknown model family"):
        get_family("nope")


def test_seed_architecture_is_the_default():
    cfg = LHCbWGANConfig(detector=load_detector("lhcb-ecal").to_yaml(), conditions=CONDITIONS)
    model = LHCbWGAN(cfg)
    assert cfg.latent == 512 and cfg.generator_channels == (256, 128, 64, 32)
    assert model.generator.dense.out_features == 256 * 4 * 4
    assert cfg.gp_lambda == 10 and cfg.n_critic == 5


def test_decode_shapes_and_determinism(rng):
    model, conditions = fitted(rng)
    c = torch.as_tensor(conditions[:5], dtype=torch.float32)
    noise = model.noise(5, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = model.decode(noise, c), model.decode(noise, c)
    assert a.shape == (5, 900) and torch.equal(a, b) and a.min() >= 0
    showers = model.sample(conditions[:5], torch.Generator().manual_seed(1))
    assert np.array_equal(showers, a.numpy())


def test_save_and_load_roundtrip(tmp_path, rng):
    model, _ = fitted(rng)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    assert again.config == model.config


def test_train_step_changes_the_networks(rng):
    model, conditions = fitted(rng)
    batch = model.to_training(rng.exponential(5.0, (16, 900)), conditions[:16, 2], conditions[:16])
    optimizers = model.optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.train_step([batch, batch], optimizers, torch.Generator().manual_seed(0), 0)
    assert "regressor_mse" in losses  # the regressor trains first
    losses = model.train_step([batch, batch], optimizers, torch.Generator().manual_seed(0), 5)
    assert {"wasserstein", "gradient_penalty", "generator_regression"} <= set(losses)
    after = model.state_dict()
    assert not torch.equal(before["generator.out.2.weight"], after["generator.out.2.weight"])
    assert not torch.equal(before["critic.head.2.weight"], after["critic.head.2.weight"])


def test_detector_must_be_one_cartesian_layer():
    with pytest.raises(CaloforgeError, match="one cartesian readout layer"):
        LHCbWGAN(config("atlas-like"))


def test_numbers_from_the_command_line_become_strings():
    assert config(version=1).version == "1"


def test_showers_read_out_like_the_detector(rng):
    """No cell between 0 and the threshold."""
    model, conditions = fitted(rng)
    model.config = model.config.model_copy(update={"resolution": (0.2, 3.0, 0.01)})
    with torch.no_grad():
        model.profile.log_width.fill_(np.log(0.05))  # a narrow shower, most cells nearly empty
    showers = model.sample(conditions, torch.Generator().manual_seed(1))
    threshold = model.detector.threshold
    assert threshold > 0 and (showers == 0).any()
    assert not ((showers > 0) & (showers < threshold)).any()


def test_visible_energy_follows_the_fitted_resolution(rng):
    energy = np.exp(rng.uniform(np.log(1e3), np.log(1e5), 20000))
    a, b = 0.1 * np.sqrt(1e3), 0.01  # 10 %/sqrt(E/GeV) ⊕ 1 %
    ratio = 0.2 * (1 + np.sqrt(a**2 / energy + b**2) * rng.normal(size=len(energy)))
    mean, a_fit, b_fit = _fit_resolution(ratio * energy, energy)
    assert mean == pytest.approx(0.2, rel=1e-3)
    assert a_fit == pytest.approx(a, rel=0.05) and b_fit == pytest.approx(b, rel=0.2)

    model, conditions = fitted(rng)
    c = torch.as_tensor(conditions, dtype=torch.float32)
    noise = model.noise(len(c), torch.Generator().manual_seed(1))
    with torch.no_grad():
        visible = model._fractions(noise, model.condition_transform.forward(c), c).sum(dim=1)
    mean, a, b = model.config.resolution
    energy = torch.linalg.vector_norm(c[:, :3], dim=1)
    expected = mean * (1 + torch.sqrt(a**2 / energy + b**2) * noise[:, 0]).clamp_min(0)
    assert torch.allclose(visible, expected, rtol=1e-5)


def test_shower_axis_is_fitted_from_the_data(tiny_model):
    """The fixture's blobs sit at x + 100 mm · px/pz on 20 mm cells from -300 mm."""
    column, row = json.loads((tiny_model / "config.json").read_text())["axis"]
    assert column == pytest.approx([14.5, 0.05, 0, 5, 0], abs=0.15)
    assert row == pytest.approx([14.5, 0, 0.05, 0, 5], abs=0.15)


def test_cells_under_the_threshold_still_learn(rng):
    """The read-out's zeros pass the smooth shower's gradient (straight-through)."""
    model, conditions = fitted(rng)
    model.config = model.config.model_copy(update={"resolution": (0.2, 3.0, 0.01)})
    with torch.no_grad():
        model.profile.log_width.fill_(np.log(0.05))
    c = model.condition_transform.forward(torch.as_tensor(conditions, dtype=torch.float32))
    noise = model.noise(len(c), torch.Generator().manual_seed(1))
    y = model.generate_transformed(noise, c)
    empty = model.shower_transform.forward(torch.zeros(1, 1), torch.ones(1, 1)).item()
    event, cell = map(int, torch.nonzero(y == empty)[0])
    (grad,) = torch.autograd.grad(y[event, cell], model.profile.log_width)
    assert grad.abs().sum() > 0


def test_lateral_profile_is_recovered_from_its_own_showers(rng):
    truth = LateralProfile((30, 30), widths=(0.3, 1.5))
    centres = rng.uniform(10, 19, (50, 2))
    with torch.no_grad():
        showers = truth(torch.as_tensor(centres)).exp().double().numpy()
    assert showers.sum(axis=1) == pytest.approx(1, abs=0.05)  # most energy on 30 x 30 cells
    profile = LateralProfile((30, 30), widths=(0.15, 0.6))
    profile.fit(showers, centres + rng.normal(0, 0.2, centres.shape), iterations=400)
    widths = np.sort(profile.log_width.detach().exp().numpy())
    assert widths == pytest.approx([0.3, 1.5], rel=0.1)
