"""The yardstick on real Geant4 showers: a floor for the same physics, flags for defects."""

import warnings

import numpy as np
import pytest

from caloforge.detectors import load_detector
from caloforge.evaluation.distortions import (
    scale_energy,
    share_with_neighbours,
    shift_outward,
    smear_cells,
    write_distorted,
)
from caloforge.evaluation.evaluate import evaluate
from caloforge.geant4.run import simulate
from caloforge.sources import load_source, with_energy

N = 300


@pytest.fixture(scope="module")
def geant4_pair(tmp_path_factory):
    """Two independent samples of 2 GeV LHCb electrons (angles and entry points as the seed)."""
    folder = tmp_path_factory.mktemp("calibration")
    source = with_energy(load_source("lhcb"), 2000.0)
    detector = load_detector("lhcb-ecal")
    paths = []
    for seed in (11, 12):
        paths.append(folder / f"g4_{seed}.h5")
        simulate(detector, source, N, paths[-1], seed=seed, jobs=2)
    return paths


def metrics(gen, ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(gen, ref, seed=0, quick=True).metrics


def test_floor_and_distortions(geant4_pair, tmp_path):
    reference, other = geant4_pair
    floor = metrics(other, reference)
    assert abs(floor["auc_cells_network"] - 0.5) < 0.1
    assert abs(floor["auc_features"] - 0.5) < 0.1
    assert floor["separation_power"]["E_tot"] < 0.1

    # A 5 % scale is within a 2 GeV shower's 6 % resolution: at 300 showers the features'
    # classifier and the E_tot histogram see it; FPD needs the benchmark's 10 000.
    scaled = metrics(write_distorted(other, tmp_path / "scaled.h5", "energy x1.05"), reference)
    assert scaled["auc_features"] > 0.6
    assert scaled["separation_power"]["E_tot"] > 3 * floor["separation_power"]["E_tot"]

    wide = metrics(write_distorted(other, tmp_path / "wide.h5", "widened by 1 cell"), reference)
    assert wide["auc_features"] > 0.9
    assert wide["separation_power"]["width_trans"] > 3 * floor["separation_power"]["width_trans"]
    assert wide["fpd_x1e3"] > floor["fpd_x1e3"] + 10 * (
        floor["fpd_x1e3_err"] + wide["fpd_x1e3_err"]
    )


def test_distortions_do_what_they_say():
    detector = load_detector("lhcb-ecal")
    showers = np.zeros((2, 900), np.float32)
    showers[:, 15 * 30 + 15] = 100.0
    assert np.allclose(scale_energy(showers).sum(axis=1), 105.0)
    wide = smear_cells(showers, detector, 1.0)
    assert np.allclose(wide.sum(axis=1), 100.0, rtol=1e-5)
    assert wide[0, 15 * 30 + 16] > 5 and wide[0, 15 * 30 + 15] < 30
    shared = share_with_neighbours(showers, detector, 0.2)
    assert np.allclose(shared.sum(axis=1), 100.0)
    assert shared[0, 15 * 30 + 15] == 80 and shared[0, 15 * 30 + 16] == 5
    par04 = load_detector("par04")
    rings = np.zeros((1, 6480), np.float32)
    rings[0, 8 * 9 + 3] = 10.0  # layer 0, angle bin 8, ring 3
    rings[0, 8 * 9 + 8] = 1.0  # the outermost ring keeps its energy
    out = shift_outward(rings, par04, 0.2)
    assert out[0, 8 * 9 + 3] == 8 and out[0, 8 * 9 + 4] == 2 and out[0, 8 * 9 + 8] == 1
