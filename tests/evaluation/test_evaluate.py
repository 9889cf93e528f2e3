import json

import h5py
import numpy as np
import pytest

from caloforge.data.showerfile import ShowerBatch, ShowerFile, ShowerWriter
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.evaluation.evaluate import Sample, compare, evaluate, load_sample, write_metrics
from caloforge.evaluation.observables import FAR_CELLS, centroid_distances
from tests.conftest import write_lhcb_like

KEYS = (
    "n_generated",
    "n_reference",
    "auc_cells_network",
    "auc_cells_trees",
    "auc_features",
    "fpd_x1e3",
    "fpd_x1e3_err",
    "kpd_x1e3",
    "kpd_x1e3_err",
    "separation_power",
    "w1",
    "observables",
    "far_cell_spectrum_separation_power",
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    ref = write_lhcb_like(folder / "ref.h5", 400, seed=1)
    gen = write_lhcb_like(folder / "gen.h5", 400, seed=2)
    return gen, ref


@pytest.fixture(scope="module")
def quick(pair):
    gen, ref = pair
    return evaluate(gen, ref, seed=3, quick=True, allow_condition_mismatch=True)


def test_metrics_contract_and_determinism(pair, quick, tmp_path):
    gen, ref = pair
    a = quick
    for key in KEYS:
        assert key in a.metrics
    assert set(a.metrics["separation_power"]) == set(a.metrics["observables"])
    assert "asym_long" in a.metrics["observables"]  # the LHCb cluster observables
    assert "ring_8-inf" in a.metrics["separation_power"]  # the rings of a one-layer readout
    assert isinstance(a.metrics["histogram_bins"], int) and a.metrics["histogram_bins"] > 1
    path = write_metrics(a, tmp_path / "one")
    b = evaluate(gen, ref, seed=3, quick=True, allow_condition_mismatch=True)
    assert path.read_text() == write_metrics(b, tmp_path / "two").read_text()
    c = evaluate(gen, ref, seed=4, quick=True, allow_condition_mismatch=True)
    assert c.metrics["auc_cells_network"] != a.metrics["auc_cells_network"]
    assert json.loads(path.read_text())["n_reference"] == 400


def test_boosted_trees_judge_the_cells(pair, quick, tmp_path):
    _, ref = pair
    assert abs(quick.metrics["auc_cells_trees"] - 0.5) < 0.15
    wide = write_lhcb_like(tmp_path / "wide.h5", 400, seed=3, widen=2.0)
    different = evaluate(wide, ref, seed=3, quick=True, allow_condition_mismatch=True)
    assert different.metrics["auc_cells_trees"] > 0.9


def test_far_cell_spectrum_separation(tmp_path):
    # Blobs three times wider than the pair's, so that cells beyond 6 cells hold energy.
    ref = write_lhcb_like(tmp_path / "wide.h5", 200, seed=1, widen=3.0)
    detector = load_detector("lhcb-ecal")
    sample = load_sample(ref, None, detector.threshold)
    far = centroid_distances(sample.showers, detector) >= FAR_CELLS
    brighter = np.where(far, 10 * sample.showers, sample.showers)  # only the far cells

    def metrics(showers):
        gen = Sample(showers, sample.energy, sample.conditions)
        names = ShowerFile(ref).condition_names
        return compare(
            sample, gen, detector, names, threshold=detector.threshold, classifier=False
        ).metrics

    same = metrics(sample.showers.copy())
    assert same["far_cell_spectrum_separation_power"] == pytest.approx(0.0, abs=1e-12)
    assert same["auc_cells_trees"] is None
    shifted = metrics(brighter)
    assert shifted["far_cell_spectrum_separation_power"] > 0.3
    # The whole spectrum dilutes the far cells among the near ones.
    assert shifted["cell_spectrum_separation_power"] < shifted["far_cell_spectrum_separation_power"]


def test_bins_per_energy_and_angle(pair):
    gen, ref = pair
    bins = evaluate(gen, ref, classifier=False, allow_condition_mismatch=True).metrics["bins"]
    kinds = {b["kind"] for b in bins}
    assert kinds == {"energy range", "angle to z range"}
    assert sum(b["n_ref"] for b in bins if b["kind"] == "energy range") == 400


def test_differing_conditions_are_refused_or_warned(tmp_path, pair):
    _, ref = pair
    from caloforge.data.showerfile import ShowerFile

    data = ShowerFile(ref).read()
    shifted = tmp_path / "shifted.h5"
    with ShowerWriter.create(
        shifted, n_cells=900, condition_names=data_names(ref), attrs=ShowerFile(ref).header
    ) as w:
        w.append(ShowerBatch(data.showers, data.incident_energies * 3, data.conditions * 3))
    with pytest.raises(CaloforgeError, match="condition distributions differ"):
        evaluate(shifted, ref, classifier=False)


def data_names(path):
    from caloforge.data.showerfile import ShowerFile

    return ShowerFile(path).condition_names


def write_plain(path, showers, detector=None):
    """A file with the LHCb conditions, written with h5py so that anything can go in."""
    with h5py.File(path, "w") as h5:
        h5["showers"] = showers
        h5["incident_energies"] = np.full((len(showers), 1), 1000.0)
        h5["conditions"] = np.tile([0.0, 0.0, 1000.0, 0.0, 0.0], (len(showers), 1))
        h5["conditions"].attrs["names"] = "px,py,pz,x,y"
        if detector is not None:
            h5.attrs["detector"] = load_detector(detector).to_yaml()
    return path


def test_bad_inputs_give_one_line_errors(tmp_path, pair, cli):
    _, ref = pair
    cases = {
        "different detectors": write_plain(tmp_path / "par04.h5", np.ones((5, 6480)), "par04"),
        "cell counts": write_plain(tmp_path / "cells.h5", np.ones((5, 899))),
        "no events": write_plain(tmp_path / "empty.h5", np.ones((0, 900)), "lhcb-ecal"),
    }
    nan = np.ones((5, 900))
    nan[2, 3] = np.nan
    cases["NaN"] = write_plain(tmp_path / "nan.h5", nan, "lhcb-ecal")
    messages = {
        "different detectors": "different cell counts",
        "cell counts": "different cell counts",
        "no events": "holds no events",
        "NaN": "NaN",
    }
    for case, path in cases.items():
        code, _, stderr = cli("evaluate", str(path), str(ref), "--out", str(tmp_path / "o"))
        assert code == 1, case
        assert messages[case] in stderr and len(stderr.strip().splitlines()) == 1, stderr
    # Same cell count, other detector: the recorded detectors disagree.
    other = load_detector("lhcb-ecal").model_dump(mode="json")
    other["name"] = "another-ecal"
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["showers"] = np.ones((5, 900))
        h5["incident_energies"] = np.full((5, 1), 1000.0)
        from caloforge.detectors import detector_from_yaml

        h5.attrs["detector"] = detector_from_yaml(json.dumps(other)).to_yaml()
    with pytest.raises(CaloforgeError, match="different detectors"):
        evaluate(tmp_path / "other.h5", ref)


def test_cli_writes_metrics_report_and_summary(tmp_path, pair, cli):
    gen, ref = pair
    code, stdout, _ = cli(
        "evaluate",
        str(gen),
        str(ref),
        "--out",
        str(tmp_path / "ev"),
        "--quick",
        "--allow-condition-mismatch",
    )
    assert code == 0
    assert (tmp_path / "ev" / "metrics.json").exists() and (
        tmp_path / "ev" / "report.html"
    ).exists()
    assert "classifier AUC" in stdout or "AUC" in stdout
