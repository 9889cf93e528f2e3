"""The 3DGAN seed's validation in evaluate and its report, on synthetic clic-ecal files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caloforge.detectors import load_detector
from caloforge.evaluation import evaluate as evaluate_module
from caloforge.evaluation.clic import applies, image_profiles, summary
from caloforge.evaluation.evaluate import evaluate, in_chunks, load_sample
from caloforge.evaluation.report import write_report
from tests.conftest import write_clic_like


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clic")
    return {
        "ref": write_clic_like(d / "ref.h5", 150, seed=10),
        "same": write_clic_like(d / "same.h5", 150, seed=20),
        "scaled": write_clic_like(d / "scaled.h5", 150, seed=20, scale=1.25),
    }


def test_applies_to_3d_images_conditioned_on_energy_and_theta():
    clic = load_detector("clic-ecal")
    assert applies(clic, ("energy", "theta"))
    assert not applies(clic, ("energy",))
    assert not applies(load_detector("atlas-like"), ("energy", "theta"))


def test_chunks_give_the_same_observables_as_one_pass(files, monkeypatch):
    detector = load_detector("clic-ecal")
    sample = load_sample(files["ref"], None, 0.0)
    whole = image_profiles(sample.showers, detector)
    monkeypatch.setattr(evaluate_module, "CHUNK_CELLS", 7 * 65025 + 5)  # 7 events per chunk
    chunked = in_chunks(lambda s, e, c: image_profiles(s, detector), sample)
    small = load_sample(files["ref"], None, 0.0)  # read 7 events at a time
    assert np.array_equal(small.showers, sample.showers)
    for key, values in whole.items():
        np.testing.assert_allclose(chunked[key], values, rtol=1e-12)


def test_seed_validation_separates_a_25_percent_energy_scale(files, tmp_path):
    same = evaluate(files["same"], files["ref"], classifier=False).metrics["clic"]
    scaled = evaluate(files["scaled"], files["ref"], classifier=False)
    clic = scaled.metrics["clic"]
    assert same["response"]["max_relative_difference"] < 0.05
    assert abs(clic["response"]["max_relative_difference"] - 0.25) < 0.05
    assert clic["profiles"]["max_relative_difference"] > 0.2
    assert len(clic["profiles"]["bins"]) == 3 and len(clic["response"]["bins"]) == 10
    features = clic["correlation"]["features"]
    assert {"E_p", "theta", "M1x", "M2z", "E_back"} <= set(features)
    assert np.shape(clic["correlation"]["reference"]) == (len(features), len(features))
    # A tilt in x: the mean x of the blob follows cot θ in the reference.
    rows = clic["profiles"]["bins"]
    peaks = [int(np.argmax(row["x_ref"])) for row in rows]
    assert peaks[0] > peaks[1] > peaks[2]
    page = write_report(scaled, tmp_path).read_text()
    assert 'id="clic"' in page and "clic_profiles.png" in page
    assert (tmp_path / "clic_correlation.png").exists()
    json.dumps(clic)  # plain values only
    headline = summary(clic)
    assert headline["E_tot/E_p, worst E_p bin"] == clic["response"]["max_relative_difference"]
    assert summary(same)["profiles"] < headline["profiles"]
