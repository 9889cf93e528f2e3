"""Tests of caloforge.evaluation.classifier: the quick network, and the protocol on a narrower
network (the full 3 x 2048 takes minutes)."""

import dataclasses

import numpy as np
import pytest
import torch

from caloforge.errors import CaloforgeError
from caloforge.evaluation.classifier import (
    PROTOCOL,
    QUICK,
    ClassifierResult,
    boosted_auc,
    classifier_auc,
    low_level_inputs,
)
from tests.conftest import write_lhcb_like

NARROW = dataclasses.replace(PROTOCOL, name="narrow", hidden=256, batch_size=100)
"""CaloChallenge's protocol (3 layers, no dropout, best accuracy, 50 epochs), 8x narrower."""


@pytest.fixture
def rng():
    return np.random.default_rng(2022)


def test_same_distribution_gives_auc_near_one_half(rng):
    ref, gen = rng.normal(size=(2, 3_000, 8))
    result = classifier_auc(ref, gen, seed=0, settings=QUICK)
    assert 0.45 < result.auc < 0.58
    assert result.jsd < 0.05


def test_separated_distributions_give_auc_near_one(rng):
    ref, gen = rng.normal(size=(2, 3_000, 8))
    result = classifier_auc(ref, gen + 1.0, seed=0, settings=QUICK)
    assert result.auc > 0.9
    assert result.jsd > 0.5


def test_auc_below_one_half_is_reported_raw(rng):
    # Folding (max(auc, 1 - auc)) would keep every AUC of indistinguishable samples above 0.5.
    # Each draw new samples: two fixed finite samples differ a little, and every seed's
    # classifier would find that same difference.
    aucs = [
        classifier_auc(*rng.normal(size=(2, 1_000, 4)), seed=seed, settings=QUICK).auc
        for seed in range(8)
    ]
    assert min(aucs) < 0.5 < max(aucs)


def test_boosted_trees_ignore_cells_never_read_out(rng):
    ref, gen = rng.gamma(1.0, 1.0, size=(2, 400, 6))
    gen[:, 0] *= 3.0
    empty = np.zeros((400, 3))
    wider = [np.concatenate([empty[:, :1], x, empty[:, 1:]], axis=1) for x in (ref, gen)]
    assert boosted_auc(*wider, seed=1) == boosted_auc(ref, gen, seed=1) > 0.6


def test_same_seed_same_result_other_seed_other_result(rng):
    ref, gen = rng.normal(size=(2, 1_500, 6))
    gen += 0.2
    first = classifier_auc(ref, gen, seed=7, settings=QUICK)
    assert classifier_auc(ref, gen, seed=7, settings=QUICK) == first
    assert classifier_auc(ref, gen, seed=8, settings=QUICK).auc != first.auc


def test_global_torch_random_state_is_left_alone(rng):
    ref, gen = rng.normal(size=(2, 500, 3))
    state = torch.random.get_rng_state()
    classifier_auc(ref, gen, seed=0, settings=QUICK)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_classes_are_balanced_and_split_60_20_20(rng):
    result = classifier_auc(
        rng.normal(size=(3_000, 3)), rng.normal(size=(1_000, 3)), seed=0, settings=QUICK
    )
    assert isinstance(result, ClassifierResult)
    assert (result.n_train, result.n_val, result.n_test) == (1_200, 400, 400)
    assert 1 <= result.best_epoch <= result.epochs == 15
    assert result.settings == "quick"


def test_bad_inputs_raise(rng):
    ref, gen = rng.normal(size=(2, 100, 3))
    gen[5, 1] = np.nan
    with pytest.raises(CaloforgeError, match="NaN or infinite"):
        classifier_auc(ref, gen, seed=0, settings=QUICK)
    with pytest.raises(CaloforgeError, match="3 features but generated has 2"):
        classifier_auc(ref, ref[:, :2], seed=0, settings=QUICK)
    with pytest.raises(CaloforgeError, match="at least 10 samples"):
        classifier_auc(ref[:5], ref[:5], seed=0, settings=QUICK)


def test_low_level_inputs_are_log_energy_and_cell_fractions():
    showers = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 10.0], [50.0, 40.0]]])
    inputs = low_level_inputs(showers, [[10.0], [100.0]])
    np.testing.assert_allclose(
        inputs, [[1.0, 0.1, 0.2, 0.3, 0.4], [2.0, 0.0, 0.1, 0.5, 0.4]], rtol=1e-12
    )
    scaled = low_level_inputs(showers, [[10.0], [100.0]], scale=2.0)
    np.testing.assert_allclose(scaled[:, 1:], 2 * inputs[:, 1:], rtol=1e-12)


@pytest.mark.parametrize(
    ("energies", "match"), [([1.0], "2 showers but 1"), ([1.0, 0.0], "positive")]
)
def test_low_level_inputs_reject_bad_energies(energies, match):
    with pytest.raises(CaloforgeError, match=match):
        low_level_inputs(np.ones((2, 3)), energies)


@pytest.fixture(scope="module")
def lhcb_files(tmp_path_factory):
    """Independent samples of the lhcb-like blobs (2000 showers each): two of the same
    physics, and one 50 % wider (a radial smear that the blobs' cell noise does not hide)."""
    from caloforge.data.showerfile import ShowerFile

    folder = tmp_path_factory.mktemp("pair")
    return [
        ShowerFile(write_lhcb_like(folder / f"s{seed}.h5", 2000, seed=seed, widen=widen)).read()
        for seed, widen in ((5, 1.0), (6, 1.0), (7, 1.5))
    ]


def test_protocol_sees_a_radial_smear(lhcb_files):
    ref, _, wide = lhcb_files
    scale = 1 / 0.17  # the blobs' response, as evaluate scales the cells
    result = classifier_auc(
        low_level_inputs(ref.showers, ref.incident_energies, scale),
        low_level_inputs(wide.showers, wide.incident_energies, scale),
        seed=0,
        settings=NARROW,
    )
    assert result.auc >= 0.95


def test_protocol_on_the_same_physics_gives_one_half(lhcb_files):
    ref, other, _ = lhcb_files
    scale = 1 / 0.17
    result = classifier_auc(
        low_level_inputs(ref.showers, ref.incident_energies, scale),
        low_level_inputs(other.showers, other.incident_energies, scale),
        seed=0,
        settings=NARROW,
    )
    assert abs(result.auc - 0.5) < 0.06
    assert result.epochs == 50  # no early stop below an accuracy of 1


def test_protocol_settings_are_calochallenges():
    assert (PROTOCOL.hidden, PROTOCOL.layers, PROTOCOL.dropout) == (2048, 3, 0.0)
    assert (PROTOCOL.lr, PROTOCOL.batch_size, PROTOCOL.epochs) == (2e-4, 1000, 50)
    assert not PROTOCOL.standardise and QUICK.standardise
    net = [
        m
        for m in __import__("caloforge.evaluation.classifier", fromlist=["_network"])._network(
            10, PROTOCOL
        )
        if isinstance(m, torch.nn.Linear)
    ]
    assert [(m.in_features, m.out_features) for m in net] == [
        (10, 2048),
        (2048, 2048),
        (2048, 2048),
        (2048, 1),
    ]
