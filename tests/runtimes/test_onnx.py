import json

import numpy as np
import onnx
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.errors import CaloforgeError
from caloforge.models import load_model
from caloforge.runtimes.onnx import OPSET, OnnxSampler, export_onnx, metadata_path
from tests.conftest import TINY


def test_onnx_matches_torch(tmp_path, tiny_model, lhcb_like):
    model = load_model(tiny_model)
    path = export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version == OPSET
    assert [i.name for i in graph.graph.input] == ["noise", "conditions"]
    sampler = OnnxSampler(path)
    rng = np.random.default_rng(0)
    source = ShowerFile(lhcb_like).read().conditions.astype(np.float32)
    for batch in (1, 7, 300):  # the batch axis is dynamic
        conditions = source[rng.choice(len(source), batch)]
        noise = rng.normal(size=(batch, model.latent_dim)).astype(np.float32)
        with torch.inference_mode():
            expected = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
        got = sampler.decode(noise, conditions)
        assert got.shape == (batch, 900)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_export_is_deterministic_and_documented(tmp_path, tiny_model):
    model = load_model(tiny_model)
    a = export_onnx(model, tmp_path / "a.onnx").read_bytes()
    b = export_onnx(model, tmp_path / "b.onnx").read_bytes()
    assert a == b
    meta = json.loads(metadata_path(tmp_path / "a.onnx").read_text())
    assert meta["inputs"]["noise"]["shape"] == ["batch", model.latent_dim]
    assert meta["inputs"]["conditions"]["names"] == ["px", "py", "pz", "x", "y"]
    assert meta["outputs"]["showers"]["unit"] == "MeV"
    assert meta["cell_order"].startswith("layer-major")
    assert "lam" in json.dumps(meta["transforms"])  # the Box-Cox constant a C++ user may need


def test_export_errors(tmp_path, tiny_model):
    model = load_model(tiny_model)
    with pytest.raises(CaloforgeError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "model.bin")
    with pytest.raises(CaloforgeError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "model.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(CaloforgeError, match="cannot load"):
        OnnxSampler(tmp_path / "bad.onnx")


# Every family's export is checked by tests/test_families.py; here, what their options change:
# the LSTM's other outputs, at a fast learning rate (after a few steps at the default, their
# showers are empty), and the energy-first model's transformer over the parts, with the parts'
# counts drawn (a sort of each part's cells), with a token per layer and one per ring; on
# lcd-ecal's stand-in, whose showers fill many cells.
OTHER_OPTIONS = [
    (
        "energy-first",
        {**TINY["energy-first"], "shape_field": "parts", "hidden": 16, "counts": True},
    ),
    (
        "energy-first",
        {**TINY["energy-first"], "shape_field": "parts", "hidden": 16, "tokens": "rings"},
    ),
    ("lstm-lcd", {"hidden": 16, "embedding": 3, "crop": 6, "keep": 20, "lr": 0.05, "output": "l2"}),
    (
        "lstm-lcd",
        {"hidden": 16, "embedding": 3, "crop": 6, "keep": 20, "lr": 0.05, "output": "slice-energy"},
    ),
]


@pytest.mark.parametrize(("family", "options"), OTHER_OPTIONS)
def test_each_option_that_changes_a_network_exports_and_matches_torch(tmp_path, family, options):
    from caloforge.training.loop import TrainingSettings, train
    from tests.conftest import write_lcd_like

    data = write_lcd_like(tmp_path / "data.h5", 120, seed=3)
    settings = TrainingSettings(steps=5, batch_size=32, checkpoint_every=5, eval_every=5)
    train(family, data, tmp_path / "m", settings=settings, model_options=options)
    model = load_model(tmp_path / "m")
    sampler = OnnxSampler(export_onnx(model, tmp_path / "model.onnx"))
    conditions = ShowerFile(data).read(0, 9).conditions.astype(np.float32)
    noise = np.random.default_rng(0).normal(size=(9, model.latent_dim)).astype(np.float32)
    with torch.inference_mode():
        expected = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
    got = sampler.decode(noise, conditions)
    # Float32 rounding: a cell made by undoing a shift (x·σ + μ in energy fractions) is exact
    # only to about 1e-7 of the incident energy.
    energy = model.energy_of(torch.from_numpy(conditions)).numpy()
    error = np.abs(got - expected)
    assert np.all(error <= 1e-5 * np.abs(expected) + 1e-7 * energy), error.max()
    # Whatever the showers' scale, a doubled or zeroed output fails here.
    assert ((expected > 0).sum(axis=1) >= 5).all()
    np.testing.assert_allclose(got.sum(axis=1), expected.sum(axis=1), rtol=1e-4)
    np.testing.assert_allclose(got.max(axis=1), expected.max(axis=1), rtol=1e-4)


def test_every_condition_has_one_unit_field_in_the_packages():
    # The C++ library reads a package's units as a comma-separated list, one per condition.
    from caloforge.runtimes.aoti import package_metadata

    entries = package_metadata(load_model("atlas-like-gan"))  # eta: a condition without unit
    assert entries["caloforge.conditions"] == "energy,eta"
    assert entries["caloforge.condition_units"] == "MeV,"
