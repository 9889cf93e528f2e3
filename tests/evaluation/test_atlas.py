"""ATLAS shower shapes on hand-made atlas-like showers whose values are known."""

import numpy as np
import pytest

from caloforge.detectors import load_detector
from caloforge.evaluation.atlas import atlas_shower_shapes
from caloforge.evaluation.observables import high_level_features
from tests.conftest import write_atlas_like


@pytest.fixture(scope="module")
def detector():
    return load_detector("atlas-like")


def shower(detector, cells):
    """One shower from {(layer, phi row, eta column): MeV}."""
    out = np.zeros((1, detector.n_cells))
    for (layer, row, column), energy in cells.items():
        nx = detector.readout_layers[layer].readout.nx
        out[0, detector.layer_offsets[layer] + row * nx + column] = energy
    return out


def test_shapes_of_a_known_shower(detector):
    cells = {
        (0, 1, 3): 10.0,  # presampler
        (1, 1, 28): 30.0,  # strips: a maximum, and a second one two strips away
        (1, 1, 30): 10.0,
        (2, 3, 3): 60.0,  # middle: centre cell
        (2, 3, 4): 20.0,  # next eta column, same phi
        (2, 0, 3): 10.0,  # same eta column, outer phi row
        (2, 3, 0): 10.0,  # outer eta column
        (3, 3, 1): 50.0,  # back
    }
    f = atlas_shower_shapes(shower(detector, cells), detector)
    total, accordion = 200.0, 190.0
    assert f["f_presampler"][0] == pytest.approx(10 / total)
    assert f["f_middle"][0] == pytest.approx(100 / total)
    assert f["f1"][0] == pytest.approx(40 / accordion)
    assert f["f3"][0] == pytest.approx(50 / accordion)
    assert f["R_eta"][0] == pytest.approx(90 / 100)  # all but the outer eta column
    assert f["R_phi"][0] == pytest.approx(80 / 90)  # all but the outer phi row, of those
    assert f["E_ratio"][0] == pytest.approx((30 - 10) / (30 + 10))
    # w_eta2 in the central 3 eta x 5 phi: 60 at eta 0, 20 at +0.025 (row 0 is outside).
    mean = 20 * 0.025 / 80
    assert f["w_eta2"][0] == pytest.approx(np.sqrt(20 * 0.025**2 / 80 - mean**2))
    t = detector.layer_depths()["t_centre"]
    assert f["depth"][0] == pytest.approx((10 * t[0] + 40 * t[1] + 100 * t[2] + 50 * t[3]) / 200)
    assert 0 < t[0] < t[1] < t[2] < t[3]


def test_shapes_join_the_high_level_features_of_atlas_like_only(detector):
    one = shower(detector, {(2, 3, 3): 5.0})
    features = high_level_features(one, detector, np.array([[1000.0]]))
    assert {"R_eta", "R_phi", "w_eta2", "E_ratio", "f1", "f3", "depth"} <= set(features)
    assert features["E_ratio"][0] == 0.0 and features["R_eta"][0] == 1.0
    lhcb = load_detector("lhcb-ecal")
    assert atlas_shower_shapes(np.ones((1, 900)), lhcb) == {}


def test_breakdown_per_energy_point(tmp_path, cli):
    import json

    ref = write_atlas_like(tmp_path / "ref.h5", 900, seed=1)
    gen = write_atlas_like(tmp_path / "gen.h5", 900, seed=2, spread=2.0)
    code, out, err = cli(
        "evaluate", str(gen), str(ref), "--out", str(tmp_path / "e"), "--by", "energy",
        "--no-classifier", "--allow-condition-mismatch",
    )  # fmt: skip
    assert code == 0, err
    by = json.loads((tmp_path / "e" / "metrics.json").read_text())["by"]
    assert by["condition"] == "energy" and len(by["values"]) == 9
    low, high = by["values"][0], by["values"][-1]
    assert (low["value"], high["value"]) == (1024.0, 262144.0)
    # Twice Geant4's resolution at every energy: seen per energy point.
    for row in (low, high):
        assert row["resolution_gen"] == pytest.approx(2 * row["resolution_ref"], rel=0.3)
        assert "R_eta" in row["metrics"]["separation_power"]
    assert low["resolution_ref"] > 5 * high["resolution_ref"]
    assert "per value of energy" in out and "262144" in out
    page = (tmp_path / "e" / "report.html").read_text()
    assert '<section id="breakdown">' in page and "Per value of energy" in page
    assert page.count("<tr><td>") >= 9
    # The ATLAS validation, in every evaluation of atlas-like photons, sees the same per energy.
    atlas = json.loads((tmp_path / "e" / "metrics.json").read_text())["atlas"]
    assert atlas["energies"][0]["label"] == "E = 1.024 GeV" and len(atlas["energies"]) == 9
    for row in atlas["energies"]:
        assert row["resolution_ratio"] == pytest.approx(2, rel=0.3)
        assert abs(row["response_relative_difference"]) < 0.05
    assert atlas["worst_resolution_ratio"] > 1.5
    assert '<section id="atlas">' in page and "atlas_energies.png" in page
    assert (tmp_path / "e" / "atlas_energies.png").exists()


def test_atlas_validation_of_a_sample_against_itself_and_a_scaled_copy(tmp_path):
    from caloforge.evaluation import atlas
    from caloforge.evaluation.evaluate import Sample, load_sample

    path = write_atlas_like(tmp_path / "ref.h5", 450, seed=3)
    detector, names = load_detector("atlas-like"), ("energy",)
    ref = load_sample(path, None, threshold=0.0)
    assert atlas.applies(detector, names) and not atlas.applies(detector, ("theta",))
    same = atlas.measure(ref, ref, detector, names, 0.0, seed=0)
    assert len(same["energies"]) == 9
    assert same["worst_response_relative_difference"] == pytest.approx(0, abs=1e-12)
    assert same["worst_resolution_ratio"] == pytest.approx(1)
    assert same["worst_separation_power"]["value"] == pytest.approx(0, abs=1e-12)
    # Twice the energy in the strips, the rest unchanged: the response rises by the strips'
    # 10 % at every energy, the resolution does not move, and f1 is told apart.
    cells = ref.showers.copy()
    strips = slice(detector.layer_offsets[1], detector.layer_offsets[2])
    cells[:, strips] *= 2
    other = Sample(cells, ref.energy, ref.conditions)
    out = atlas.measure(ref, other, detector, names, 0.0, seed=0)
    assert out["worst_response_relative_difference"] == pytest.approx(0.1, rel=1e-3)
    assert out["worst_resolution_ratio"] == pytest.approx(1, abs=1e-6)
    assert out["worst_separation_power"]["value"] > 0.9
    assert out["worst_separation_power"]["shape"] in {"f_strips", "f1", "f_middle"}
    figures = atlas.summary(out)
    assert figures["E_tot/E_inc, worst energy"] == pytest.approx(0.1, rel=1e-3)
    assert len(figures) == 3


def test_breakdown_needs_a_discrete_condition(tmp_path, cli):
    from tests.conftest import write_lhcb_like

    lhcb = write_lhcb_like(tmp_path / "lhcb.h5", 50, seed=1)
    for by, message in (("energy", "not a discrete condition"), ("eta", "has no condition")):
        code, _, err = cli("evaluate", str(lhcb), str(lhcb), "--out", str(tmp_path / "e"),
                           "--by", by, "--no-classifier")  # fmt: skip
        assert code == 1 and message in err and "Traceback" not in err
