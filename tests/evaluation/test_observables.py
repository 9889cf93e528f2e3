import numpy as np
import pytest

from caloforge.detectors import load_detector
from caloforge.evaluation.observables import (
    FAR_CELLS,
    RINGS,
    centroid_distances,
    far_cell_energies,
    high_level_features,
    ring_fractions,
)

NX = 30


@pytest.fixture(scope="module")
def lhcb():
    return load_detector("lhcb-ecal")


def shower(cells: dict[tuple[int, int], float]) -> np.ndarray:
    """One lhcb-ecal shower with the given energies at (row, column)."""
    out = np.zeros((1, NX * NX))
    for (row, column), energy in cells.items():
        out[0, row * NX + column] = energy
    return out


def test_one_cell_holds_all_the_energy_in_the_first_ring(lhcb):
    fractions = ring_fractions(shower({(15, 15): 80.0}), lhcb)
    assert list(fractions) == list(RINGS)
    assert fractions["ring_0-1"][0] == 1.0
    assert sum(f[0] for f in fractions.values()) == 1.0


def test_energy_at_known_distances_lands_in_its_ring(lhcb):
    # 1000 MeV on (15, 15) with 1 MeV on each side keeps the centroid on (15, 15); the small
    # deposits sit at 2, 4, 7 and 10 cells from it.
    one = shower({(15, 15): 1000.0, (15, 13): 1.0, (15, 17): 1.0, (11, 15): 2.0, (19, 15): 2.0,
                  (8, 15): 3.0, (22, 15): 3.0, (15, 5): 4.0, (15, 25): 4.0})  # fmt: skip
    fractions = ring_fractions(one, lhcb)
    total = one.sum()
    expected = {"ring_0-1": 1000, "ring_1-3": 2, "ring_3-6": 4, "ring_6-8": 6, "ring_8-inf": 8}
    for name, energy in expected.items():
        assert fractions[name][0] == pytest.approx(energy / total)
    assert sum(f[0] for f in fractions.values()) == pytest.approx(1.0)
    assert sorted(far_cell_energies(one, lhcb)) == [3.0, 3.0, 4.0, 4.0]


def test_ring_edges_belong_to_the_outer_ring(lhcb):
    # Two equal cells 6 cells apart: the centroid lies between them, each 3 cells away.
    one = shower({(15, 12): 10.0, (15, 18): 10.0})
    assert centroid_distances(one, lhcb)[0, 15 * NX + 12] == pytest.approx(3.0)
    assert ring_fractions(one, lhcb)["ring_3-6"][0] == pytest.approx(1.0)


def test_fractions_of_random_showers_sum_to_one(lhcb, rng):
    showers = rng.exponential(1.0, (50, NX * NX)) * (rng.random((50, NX * NX)) < 0.2)
    fractions = ring_fractions(showers, lhcb)
    np.testing.assert_allclose(sum(fractions.values()), 1.0)
    far = far_cell_energies(showers, lhcb)
    distances = centroid_distances(showers, lhcb)
    assert len(far) == ((showers > 0) & (distances >= FAR_CELLS)).sum()


def test_an_empty_shower_has_no_energy_in_any_ring(lhcb):
    fractions = ring_fractions(np.zeros((1, NX * NX)), lhcb)
    assert all(f[0] == 0.0 for f in fractions.values())
    assert far_cell_energies(np.zeros((1, NX * NX)), lhcb).size == 0


def test_rings_are_features_of_one_layer_cartesian_readouts_only(lhcb):
    one = shower({(15, 15): 80.0})
    assert set(RINGS) <= set(high_level_features(one, lhcb, np.array([[1000.0]])))
    atlas = load_detector("atlas-like")
    features = high_level_features(np.ones((1, atlas.n_cells)), atlas, np.array([[1000.0]]))
    assert not set(RINGS) & set(features)
    with pytest.raises(ValueError, match="one-layer cartesian"):
        ring_fractions(np.ones((1, atlas.n_cells)), atlas)
