"""The models that ship with caloforge load and sample showers for their own source."""

import numpy as np
import pytest
import torch

from caloforge.models import load_model, pretrained_models
from caloforge.sources import sample_primaries, source_from_yaml


def test_the_frontier_and_nyu_models_ship():
    assert {"lhcb-ecal-wgan", "lhcb-ecal-fm", "lhcb-ecal-fm-student"} <= set(pretrained_models())
    nyu = {"lcd-ecal-lstm", "lcd-ecal-lstm-l2", "lcd-ecal-wgan-mlp", "lcd-ecal-lagan"}
    assert nyu <= set(pretrained_models())
    assert load_model("lcd-ecal-lstm").config.output == "mixture"  # the stochastic one
    assert load_model("lcd-ecal-lstm-l2").config.output == "l2"  # the seed's
    energy_first = load_model("lcd-ecal-ef").config  # the layers' breakdown, a token per ring
    assert (energy_first.family, energy_first.tokens, energy_first.layer_rings) == (
        "energy-first",
        "rings",
        False,
    )


def test_the_atlas_models_ship():
    assert {"atlas-like-gan", "atlas-like-vae"} <= set(pretrained_models())
    assert load_model("atlas-like-gan").config.energy_critic  # the seed's fix, not the ablation
    assert load_model("atlas-like-vae").config.iaf_steps > 0


@pytest.mark.parametrize("name", pretrained_models())
def test_pretrained_model_samples_read_out_showers(name):
    model = load_model(name)
    source = source_from_yaml(model.config.training["data"]["source"])
    conditions = sample_primaries(source, 0, 20, seed=5).conditions(source.conditions)
    showers = model.sample(conditions, torch.Generator().manual_seed(0))
    assert showers.shape == (20, model.detector.n_cells) and np.isfinite(showers).all()
    assert ((showers == 0) | (showers >= model.detector.threshold)).all()
    response = showers.sum(axis=1) / model.energy_of(torch.as_tensor(conditions)).numpy()[:, 0]
    assert 0 < np.median(response) < 1  # a calorimeter's visible energy: part of the incident
