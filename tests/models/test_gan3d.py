"""The 3DGAN family on a tiny network and synthetic clic-ecal images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family
from caloforge.models.gan3d import barycentres, shift_cells
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS
from tests.conftest import write_clic_like

TINY = TINY_MODELS["gan-3d"]


@pytest.fixture(scope="module")
def clic_file(tmp_path_factory):
    return write_clic_like(tmp_path_factory.mktemp("clic") / "clic.h5", 100, seed=2)


def test_generator_makes_non_negative_images_of_the_detector(clic_file):
    data = ShowerFile(clic_file).read()
    cls = get_family("gan-3d")
    config = cls.config_class(
        detector=load_detector("clic-ecal").to_yaml(), conditions=("energy", "theta"), **TINY
    )
    model = cls.create(config, data.showers, data.incident_energies[:, 0], data.conditions)
    assert len(model.config.spectrum_edges) == 7 and 0 < model.config.response < 0.1
    showers = model.sample(data.conditions[:3], torch.Generator().manual_seed(0))
    assert showers.shape == (3, 65025) and showers.min() >= 0
    batch = model.to_training(data.showers[:4], data.incident_energies[:4, 0], data.conditions[:4])
    # The transform maps empty cells to the generator's zero.
    assert torch.allclose(batch.showers.min(), torch.tensor(model._zero), atol=1e-5)
    deposit, spectrum = model._physics_losses(batch.showers, batch)
    assert deposit.item() < 0.5 and spectrum.item() < 1e-6  # real against itself: no spectrum loss


@pytest.mark.parametrize("options", [{}, {"sum_weight": 0, "spectrum_weight": 0}])
def test_trains_with_and_without_the_physics_losses(clic_file, tmp_path, options):
    settings = TrainingSettings(steps=2, batch_size=8, eval_every=2, checkpoint_every=2)
    result = train("gan-3d", clic_file, tmp_path / "m", settings=settings,
                   model_options=TINY | options)  # fmt: skip
    assert result.complete
    log = (tmp_path / "m" / "training_log.jsonl").read_text()
    assert "deposited_energy_mape" in log and "discriminator_real" in log


def test_refuses_detectors_that_are_not_a_3d_image():
    cls = get_family("gan-3d")
    config = cls.config_class(
        detector=load_detector("atlas-like").to_yaml(), conditions=("energy", "theta"), **TINY
    )
    with pytest.raises(CaloforgeError, match="equal cartesian layers"):
        cls(config)


def test_shift_cells_moves_whole_cells_and_fills_zeros():
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    shifted = shift_cells(images, torch.tensor([[1, 0], [-2, 1]]))
    assert torch.equal(shifted[0, :, :, 1:], images[0, :, :, :-1])
    assert torch.equal(shifted[0, :, :, 0], torch.zeros(3, 4))
    assert torch.equal(shifted[1, :, 1:, :-2], images[1, :, :-1, 2:])
    assert shifted[1, :, 0].abs().sum() == 0 and shifted[1, :, :, -2:].abs().sum() == 0


def test_barycentre_frame_centres_training_showers_and_shifts_generated_ones_back(clic_file):
    """Blobs moved 4 cells × cot θ further: the fitted drift grows by 4; training sees them
    centred."""
    data = ShowerFile(clic_file).read()
    cot = 1 / np.tan(np.radians(data.conditions[:, 1]))
    design = np.stack([np.ones_like(cot), cot], axis=1)
    base = np.linalg.lstsq(design, barycentres(data.showers, (25, 51, 51)), rcond=None)[0]
    images = torch.as_tensor(data.showers).view(-1, 25, 51, 51)
    shift = torch.stack([torch.as_tensor(np.rint(4 * cot)), torch.zeros(len(cot))], 1).long()
    drifted = shift_cells(images, shift).flatten(1).numpy()
    cls = get_family("gan-3d")
    config = cls.config_class(
        detector=load_detector("clic-ecal").to_yaml(), conditions=("energy", "theta"), **TINY
    )
    model = cls.create(config, drifted, data.incident_energies[:, 0], data.conditions)
    a_x, b_x, a_y, b_y = model.config.drift
    assert abs(b_x - base[1, 0] - 4) < 0.3 and abs(a_x - base[0, 0]) < 0.2
    assert abs(a_y) < 0.05 and abs(b_y) < 0.05
    shape = (25, 51, 51)
    assert np.abs(barycentres(drifted, shape)[:, 0]).max() > 2
    batch = model.to_training(drifted, data.incident_energies[:, 0], data.conditions)
    centred = model._centred(drifted)
    assert np.abs(barycentres(centred, shape)).max() <= 0.5
    # Training showers are the centred ones; generated showers land back on the drift line.
    again = model.shower_transform.inverse(batch.showers.double().numpy(), None)
    assert np.allclose(again, centred, rtol=1e-4, atol=1e-5)
    # Generated showers are moved by the rounded drift at their θ, back to the detector frame.
    unshifted = cls(model.config.model_copy(update={"barycentre": False}))
    unshifted.load_state_dict(model.state_dict())
    noise, conditions = torch.randn(100, 8), torch.as_tensor(data.conditions, dtype=torch.float32)
    line = np.rint(np.stack([a_x + b_x * cot, a_y + b_y * cot], axis=1))
    with torch.no_grad():
        original = unshifted.eval().decode(noise, conditions).view(-1, *shape)
        expected = shift_cells(original, torch.as_tensor(line, dtype=torch.long))
        assert torch.allclose(model.eval().decode(noise, conditions), expected.flatten(1))


def test_exports_to_onnx_with_the_barycentre_shift(clic_file, tmp_path):
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    data = ShowerFile(clic_file).read()
    cls = get_family("gan-3d")
    config = cls.config_class(
        detector=load_detector("clic-ecal").to_yaml(), conditions=("energy", "theta"), **TINY
    )
    model = cls.create(config, data.showers, data.incident_energies[:, 0], data.conditions)
    model.config = model.config.model_copy(update={"drift": (0.3, 4.0, 0.0, 0.0)})
    sampler = OnnxSampler(export_onnx(model.eval(), tmp_path / "model.onnx"))
    conditions = data.conditions[:5].astype(np.float32)
    noise = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    with torch.inference_mode():
        expected = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
    np.testing.assert_allclose(sampler.decode(noise, conditions), expected, rtol=1e-4, atol=1e-6)


def test_mean_image_starts_the_generator_at_the_average_training_shower(clic_file):
    data = ShowerFile(clic_file).read()
    cls = get_family("gan-3d")
    config = cls.config_class(
        detector=load_detector("clic-ecal").to_yaml(),
        conditions=("energy", "theta"),
        mean_image=True,
        **TINY,
    )
    model = cls.create(config, data.showers, data.incident_energies[:, 0], data.conditions)
    batch = model.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    mean = (batch.showers - model._zero).mean(dim=0)
    assert torch.allclose(model.generator.template.flatten(), mean, atol=1e-5)
    assert "generator.template" in model.state_dict()
    # Zero the convolutions' output: the generator gives the template itself.
    with torch.no_grad():
        model.generator.net[-1][1].weight.zero_()
        model.generator.net[-1][1].bias.zero_()
        out = model.eval().generator(torch.zeros(2, 8), torch.zeros(2, 1))
    assert torch.allclose(out[0].flatten(), mean.clamp_min(0), atol=1e-5)
