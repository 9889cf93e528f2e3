"""A model inside a Geant4 run (simulate --fast): hand-off at the face, fallbacks, determinism."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.geant4.fast import FAST_EXTRAS, NOISE_STREAM, fast_spec
from caloforge.geant4.run import merge, simulate
from caloforge.models import load_model, resolve_model
from caloforge.models.common import seeded_generator
from caloforge.sources import load_source, sample_primaries

MODEL = "lhcb-ecal-fm-student"
LHCB = load_source("lhcb")


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """4 events with nothing in front of the face: every primary reaches the model."""
    path = tmp_path_factory.mktemp("fast") / "bare.h5"
    spec = fast_spec(MODEL, load_detector("lhcb-ecal"), threshold=500.0)
    simulate(load_detector("lhcb-ecal"), LHCB, 4, path, seed=3, fast=spec)
    return path


def test_primary_reaching_the_face_is_the_model_shower_of_its_event(bare):
    f = ShowerFile(bare)
    data = f.read()
    assert f.producer["kind"] == "geant4+model" and f.producer["fast"]["model"]["name"] == MODEL
    assert set(FAST_EXTRAS) <= set(f.extra_names)
    np.testing.assert_array_equal(data.extras["fast_showers"], 1)
    np.testing.assert_allclose(data.extras["fast_energy"], data.incident_energies[:, 0])
    # Nothing was left to Geant4 in the calorimeter, and each event's cells are the model's
    # shower for the primary's conditions with the noise of (seed, event).
    np.testing.assert_array_equal(data.extras["energy_active"], 0)
    model = load_model(MODEL)
    primaries = sample_primaries(LHCB, 0, 4, 3)
    conditions = torch.as_tensor(primaries.conditions(model.config.conditions), dtype=torch.float32)
    for i in range(4):
        noise = model.noise(1, seeded_generator(3, NOISE_STREAM, i))
        with torch.inference_mode():
            expected = model.decode(noise, conditions[i : i + 1]).numpy()[0]
        np.testing.assert_allclose(data.showers[i], expected, rtol=1e-4, atol=1e-3)
    assert json.loads(f.attrs["fast_fallbacks"]) == dict.fromkeys(
        json.loads(f.attrs["fast_fallbacks"]), 0
    )


def test_upstream_material_sends_several_particles_and_the_run_is_reproducible(tmp_path, bare):
    detector = load_detector("lhcb-ecal").with_upstream("G4_Al", 89.0)  # one X0
    spec = fast_spec(MODEL, detector, threshold=500.0)
    source = load_source("lhcb")
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    simulate(detector, source, 6, a, seed=5, fast=spec, chunk_size=6)
    # Two shards of different chunking, merged, are the same run.
    for i in range(2):
        simulate(
            detector,
            source,
            6,
            tmp_path / f"s{i}.h5",
            seed=5,
            fast=spec,
            shard=(i, 2),
            chunk_size=1,
        )
    merge([tmp_path / "s0.h5", tmp_path / "s1.h5"], b)
    fa, fb = ShowerFile(a), ShowerFile(b)
    da, db = fa.read(), fb.read()
    # Geant4's part is exact; the model's is equal to float rounding (ONNX Runtime's arithmetic
    # depends a little on the batch, the chunk's hand-offs), so a cell at the read-out
    # threshold may fall on either side of it.
    np.testing.assert_array_equal(da.extras["energy_active"], db.extras["energy_active"])
    np.testing.assert_allclose(da.showers, db.showers, rtol=1e-4, atol=1.1 * detector.threshold)
    assert fa.attrs["fast_fallbacks"] == fb.attrs["fast_fallbacks"]
    assert "upstream" in fa.detector_yaml and fa.detector.calorimeter == load_detector("lhcb-ecal")
    fast = da.extras["fast_showers"]
    assert fast.sum() > 6  # bremsstrahlung photons and the electron: more than one per event
    totals = json.loads(fa.attrs["fast_fallbacks"])
    assert sum(totals.values()) == da.extras["full_showers"].sum()
    # The energy handed to the model never exceeds the primary's.
    assert np.all(da.extras["fast_energy"] <= da.incident_energies[:, 0] * (1 + 1e-9))


def test_out_of_range_particles_stay_in_geant4(tmp_path):
    # Entry points 20 mm off centre: the model was trained on the central 1 x 1 cm.
    source = load_source("lhcb").model_copy(
        update={"position": load_source("lhcb").position.model_copy(update={"x": 20.0})}
    )
    detector = load_detector("lhcb-ecal")
    path = tmp_path / "off.h5"
    simulate(detector, source, 2, path, seed=1, fast=fast_spec(MODEL, detector, threshold=500.0))
    data = ShowerFile(path).read()
    np.testing.assert_array_equal(data.extras["fast_showers"], 0)
    np.testing.assert_array_equal(data.extras["full_outside_x"], 1)
    assert data.extras["energy_active"].min() > 0  # Geant4 made the showers
    assert json.loads(ShowerFile(path).attrs["fast_fallbacks"])["x"] == 2


def test_bad_models_are_refused_in_one_line(tmp_path, cli):
    with pytest.raises(CaloforgeError, match="trained for detector lhcb-ecal, not atlas-like"):
        fast_spec(MODEL, load_detector("atlas-like"))
    strange = tmp_path / "strange"
    shutil.copytree(resolve_model(MODEL), strange)
    config = json.loads((strange / "config.json").read_text())
    config["conditions"][-1] = "phi"
    (strange / "config.json").write_text(json.dumps(config))
    with pytest.raises(CaloforgeError, match="conditioned on 'phi', which a particle entering"):
        fast_spec(strange, load_detector("lhcb-ecal"))
    out = tmp_path / "o.h5"
    cases = {
        "--upstream must look like MATERIAL:MM": ["--upstream", "G4_Al"],
        "trained for detector lhcb-ecal, not atlas-like": ["--fast", MODEL],
        "--fast-particles must be some of": ["--fast", MODEL, "--fast-particles", "mu-"],
    }
    for words, extra in cases.items():
        detector = "atlas-like" if "atlas" in words else "lhcb-ecal"
        code, _, err = cli(
            "simulate", detector, "--source", "lhcb", "--n", "1", "--out", str(out), *extra
        )
        assert code == 1 and words in err and err.strip().count("\n") == 0, err
        assert not out.exists()


def test_upstream_is_part_of_the_detector_only_when_given():
    plain = load_detector("lhcb-ecal")
    assert "upstream" not in plain.to_yaml()  # files of detectors without it are unchanged
    with_al = plain.with_upstream("G4_Al", 178.0)
    assert with_al.upstream_thickness == 178.0 and with_al.calorimeter == plain
    assert with_al != plain and with_al.n_cells == plain.n_cells
    with pytest.raises(Exception, match="thickness"):
        plain.with_upstream("G4_Al", -1.0)
