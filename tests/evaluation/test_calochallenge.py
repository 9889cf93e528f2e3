"""Energy units in evaluate, and the calochallenge protocol, on small par04-like files."""

import warnings

import numpy as np
import pytest

from caloforge.data.formats import to_calochallenge
from caloforge.data.showerfile import CaloforgeWarning, ShowerBatch, ShowerWriter
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.evaluation import calochallenge, distances
from caloforge.evaluation.evaluate import evaluate
from tests.conftest import write_lhcb_like


def write_par04_blobs(path, n, seed, widen=1.0, scale=1.0):
    """par04 showers, visible MeV: a longitudinal gamma profile times a radial exponential,
    response 0.031 like Geant4's. Not physics, a cheap stand-in with structure."""
    detector = load_detector("par04")
    rng = np.random.default_rng(seed)
    energy = np.exp(rng.uniform(np.log(1e3), np.log(2e4), n))
    x, y, z = detector.cell_centres.T
    r = np.hypot(x, y)
    depth = (z - z.min()) / (z.max() - z.min()) * 20 + 0.5
    profile = depth**2 * np.exp(-depth / 2.5)
    radius = 5.0 * widen * (1 + 0.1 * rng.normal(size=(n, 1)))
    shape = profile * np.exp(-r / radius)
    shape /= shape.sum(axis=1, keepdims=True)
    visible = 0.031 * scale * energy * (1 + 0.03 * rng.normal(size=n))
    showers = shape * visible[:, None] * rng.gamma(4.0, 0.25, shape.shape)
    showers[showers < 0.0005] = 0.0
    attrs = {"detector": detector.to_yaml(), "seed": seed}
    with ShowerWriter.create(path, n_cells=6480, condition_names=("energy",), attrs=attrs) as w:
        w.append(ShowerBatch(showers.astype(np.float32), energy, energy[:, None]))
    return path


@pytest.fixture(scope="module")
def par04_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("par04")
    return (
        write_par04_blobs(folder / "a.h5", 400, seed=1),
        write_par04_blobs(folder / "b.h5", 400, seed=2),
    )


def test_units_that_differ_are_refused(par04_files, tmp_path):
    a, b = par04_files
    calibrated = to_calochallenge(b, tmp_path / "cc.h5")
    with pytest.raises(CaloforgeError, match=r"different units: .*calibrated MeV"):
        evaluate(calibrated, a, classifier=False)


def test_a_bare_calochallenge_file_is_taken_in_its_convention(par04_files, tmp_path):
    # A dataset-2 file as CaloChallenge ships it states no unit: it is Si energy / 0.033, so
    # comparing it with a caloforge par04 file is refused rather than scored 30x off.
    import h5py

    a, b = par04_files
    calibrated = to_calochallenge(b, tmp_path / "cc.h5")
    bare = tmp_path / "bare.h5"
    with h5py.File(calibrated) as src, h5py.File(bare, "w") as dst:
        for key in ("incident_energies", "showers"):
            dst[key] = src[key][:]
    with pytest.raises(CaloforgeError, match=r"taken as CaloChallenge's\); convert one"):
        evaluate(bare, a, classifier=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = evaluate(bare, calibrated, classifier=False).metrics
    assert metrics["threshold_mev"] == pytest.approx(0.0005 / 0.033)


def test_a_response_off_by_more_than_two_is_warned(tmp_path):
    ref = write_lhcb_like(tmp_path / "ref.h5", 200, seed=1)
    gen = write_lhcb_like(tmp_path / "gen.h5", 200, seed=2, scale=1 / 0.033)
    with pytest.warns(CaloforgeWarning, match="median E_tot/E_inc differ"):
        metrics = evaluate(gen, ref, classifier=False, allow_condition_mismatch=True).metrics
    assert any("same energy unit" in note for note in metrics["notes"])


def test_calibrated_files_use_the_threshold_in_their_unit(par04_files, tmp_path):
    a, b = par04_files
    cc_a = to_calochallenge(a, tmp_path / "a.h5")
    cc_b = to_calochallenge(b, tmp_path / "b.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = evaluate(cc_b, cc_a, classifier=False).metrics
        visible = evaluate(b, a, classifier=False).metrics
    assert metrics["threshold_mev"] == pytest.approx(0.0005 / 0.033)
    assert metrics["energy_unit"].startswith("calibrated MeV")
    assert visible["threshold_mev"] == 0.0005
    assert metrics["median_response"]["reference"] == pytest.approx(
        visible["median_response"]["reference"] / 0.033, rel=1e-5
    )


def test_protocol_gives_the_same_numbers_for_either_unit(par04_files, tmp_path, monkeypatch):
    # jetnet's draw sizes (10 000 to 50 000 of 316 features) take minutes; smaller here.
    monkeypatch.setitem(calochallenge.FPD_OPTIONS, "min_samples", 200)
    monkeypatch.setitem(calochallenge.FPD_OPTIONS, "max_samples", 400)
    monkeypatch.setitem(calochallenge.KPD_OPTIONS, "batch_size", 200)
    a, b = par04_files
    cc_a = to_calochallenge(a, tmp_path / "a.h5")
    cc_b = to_calochallenge(b, tmp_path / "b.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visible = evaluate(b, a, quick=True, protocol="calochallenge").metrics
        calibrated = evaluate(cc_b, cc_a, quick=True, protocol="calochallenge").metrics
    assert visible["protocol"] == "calochallenge"
    # E_tot/E_inc on CaloChallenge's 0.5-1.5 range: in range (no NaN) only once calibrated.
    assert 0 <= visible["separation_power"]["E_tot/E_inc"] < 0.3
    # Equal up to float32 rounding of the cells (visible / 0.033 computed in two places), which
    # can move a value across a bin edge.
    for key, tolerance in (("fpd_x1e3", 0.1), ("kpd_x1e3", 0.1), ("auc_cells_network", 1e-4)):
        assert visible[key] == pytest.approx(calibrated[key], rel=0.02, abs=tolerance)
    assert visible["separation_power"] == pytest.approx(calibrated["separation_power"], abs=0.01)
    assert set(visible["separation_power"]) >= {"EC_r_10", "width_eta_3", "sparsity_44"}


def test_protocol_refuses_cartesian_detectors(tmp_path):
    ref = write_lhcb_like(tmp_path / "ref.h5", 50, seed=1)
    with pytest.raises(CaloforgeError, match="polar geometries"):
        evaluate(ref, ref, classifier=False, protocol="calochallenge")
    with pytest.raises(CaloforgeError, match="unknown protocol"):
        evaluate(ref, ref, classifier=False, protocol="jetnet")


def test_features_follow_calochallenges_definitions():
    detector = load_detector("par04")
    showers = np.zeros((1, 6480))
    # layer 2, alpha bin 8 (centred on pi/16), radius bins 0 and 3
    showers[0, 2 * 144 + 8 * 9 + 0] = 3.0
    showers[0, 2 * 144 + 8 * 9 + 3] = 1.0
    f = calochallenge.high_level_features(showers, np.array([100.0]), detector)
    r = np.array([4.65 / 2, 3.5 * 4.65])
    alpha = np.pi / 16
    assert f["E_layer_2"][0] == 4.0 and f["E_tot/E_inc"][0] == 0.04
    assert f["EC_r_2"][0] == pytest.approx((3 * r[0] + r[1]) / 4)
    assert f["EC_eta_2"][0] == pytest.approx((3 * r[0] + r[1]) / 4 * np.cos(alpha))
    assert f["EC_phi_2"][0] == pytest.approx((3 * r[0] + r[1]) / 4 * np.sin(alpha))
    assert f["sparsity_2"][0] == pytest.approx(142 / 144) and f["sparsity_0"][0] == 1.0
    matrix = calochallenge.feature_matrix(f, np.array([100.0]))
    assert matrix.shape == (1, 1 + 45 * 4 + 45 + 1 + 45 + 90)
    assert matrix[0, 0] == 2.0 and matrix[0, 1 + 2] == pytest.approx(np.log10(4.0 + 1e-8))


def test_separation_power_drops_entries_outside_as_calochallenge():
    edges = [0.0, 1.0, 2.0]
    assert distances.separation_power([0.5, 1.5], [0.5, 1.5, 9.0], edges, drop_outside=True) == 0
    assert distances.separation_power([0.5, 1.5], [0.5, 1.5, 9.0], edges) > 0
    assert np.isnan(distances.separation_power([5.0, 7.0], [6.0, 8.0], edges, drop_outside=True))


def test_jetnet_draws_ignore_the_sample_size():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 300, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "less precise" warning: sizes are kept as asked
        value, error = distances.fpd(
            x, y + 0.5, seed=0, min_samples=500, max_samples=1000, replace=True
        )
        kpd, kpd_error = distances.kpd(x, y + 0.5, seed=0, batch_size=1000, replace=True)
    assert value > 5 * error and kpd > 5 * kpd_error
