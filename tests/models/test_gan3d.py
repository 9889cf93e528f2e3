"""The 3DGAN family on a tiny network and synthetic clic-ecal images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerBatch, ShowerFile, ShowerWriter
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family
from caloforge.sources import load_source, sample_primaries, source_to_yaml
from caloforge.training.loop import TrainingSettings, train

TINY = {"latent": 8, "generator_filters": [4, 2, 2], "discriminator_filters": 2}


@pytest.fixture(scope="module")
def clic_file(tmp_path_factory):
    """100 clic-ecal 'showers': a blob along the depth whose energy follows the primary's."""
    detector, source = load_detector("clic-ecal"), load_source("3dgan")
    p = sample_primaries(source, 0, 100, 2)
    rng = np.random.default_rng(3)
    z = np.arange(25)[:, None, None]
    y, x = np.mgrid[0:51, 0:51]
    profile = np.exp(-((x - 25) ** 2 + (y - 25) ** 2) / 8.0) * (z + 1) * np.exp(-z / 5.0)
    showers = profile.reshape(1, -1) * (0.01 * p.energy[:, None] / profile.sum())
    showers = (showers * rng.gamma(4.0, 0.25, showers.shape)).astype(np.float32)
    showers[showers < 0.01] = 0
    path = tmp_path_factory.mktemp("clic") / "clic.h5"
    attrs = {"detector": detector.to_yaml(), "source": source_to_yaml(source), "seed": 2}
    with ShowerWriter.create(
        path, n_cells=65025, condition_names=source.conditions, attrs=attrs
    ) as w:
        w.append(ShowerBatch(showers, p.energy, p.conditions(source.conditions)))
    return path


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
