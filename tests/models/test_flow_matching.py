"""The flow-matching teacher and its one-step student, on tiny networks and stand-in data."""

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.detectors import load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family, load_model
from caloforge.models.flow_matching import (
    CellwisePath,
    FlowMatching,
    FlowMatchingConfig,
    FlowStudent,
    _dequantise,
    integrate,
)
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS

CONDITIONS = ("px", "py", "pz", "x", "y")
TINY = TINY_MODELS["flow-matching"]
SETTINGS = TrainingSettings(steps=4, batch_size=32, checkpoint_every=2, eval_every=2)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, lhcb_like):
    out = tmp_path_factory.mktemp("fm") / "teacher"
    train("flow-matching", lhcb_like, out, settings=SETTINGS, model_options=TINY)
    return out


def test_registry():
    assert get_family("flow-matching") is FlowMatching
    assert get_family("flow-matching-student") is FlowStudent


def test_dequantisation_fills_only_the_cells_below_threshold():
    cfg = FlowMatchingConfig(detector=load_detector("lhcb-ecal").to_yaml(), conditions=CONDITIONS)
    showers = np.zeros((4, 900))
    showers[:, 0] = [5.0, 0.05, 0.0, 1.0]
    out = _dequantise(showers, cfg)
    assert out[0, 0] == 5.0 and out[3, 0] == 1.0
    below = np.ones_like(showers, bool)
    below[[0, 3], 0] = False
    # Uniform below 0.35 of the threshold (0.1 MeV): a gap the read-out cuts cleanly.
    assert (out[below] >= 0).all() and (out[below] < 0.035).all() and out[below].std() > 0.008
    np.testing.assert_array_equal(out, _dequantise(showers, cfg))  # seeded


def test_midpoint_integration_is_exact_for_a_field_linear_in_time():
    field = lambda x, t, c: 2 * t + 0 * x  # noqa: E731  dx/dt = 2t → x(1) = x(0) + 1
    x = torch.zeros(3, 2)
    assert torch.allclose(integrate(field, x, torch.zeros(3, 0), steps=2), x + 1)


def test_decode_reads_out_like_the_detector(teacher, lhcb_like):
    model = load_model(teacher)
    data = ShowerFile(lhcb_like).read(0, 50)
    a = model.sample(data.conditions, torch.Generator().manual_seed(3))
    b = model.sample(data.conditions, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 900) and np.isfinite(a).all()
    assert ((a == 0) | (a >= model.detector.threshold)).all()
    assert (a > 0).any()


def test_training_lowers_the_flow_matching_loss(lhcb_like):
    data = ShowerFile(lhcb_like).read()
    cfg = FlowMatchingConfig(
        detector=load_detector("lhcb-ecal").to_yaml(),
        conditions=CONDITIONS,
        training={"settings": {"steps": 100}},
        **TINY,
    )
    energy = data.incident_energies[:, 0]
    torch.manual_seed(0)
    model = FlowMatching.create(cfg, data.showers, energy, data.conditions)
    assert model.config.axis is not None  # lhcb-ecal with (px, py, pz, x, y): centred
    batch = model.to_training(data.showers, energy, data.conditions)
    optimizers = model.optimizers()
    losses = [
        model.train_step([batch], optimizers, torch.Generator().manual_seed(s), s)["flow_matching"]
        for s in range(100)
    ]
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])


def test_unet_velocity_field_is_told_where_the_axis_lies(lhcb_like):
    data = ShowerFile(lhcb_like).read()
    cfg = FlowMatchingConfig(
        detector=load_detector("lhcb-ecal").to_yaml(),
        conditions=CONDITIONS,
        network="unet",
        channels=(4, 4, 4),
    )
    model = FlowMatching.create(cfg, data.showers, data.incident_energies[:, 0], data.conditions)
    field = model.velocity
    assert field.axis == len(CONDITIONS)  # the offset follows the transformed conditions
    torch.nn.init.normal_(field.up1.conv2.weight)  # the blocks start as identities
    x, t = torch.zeros(2, model.latent_dim), torch.full((2, 1), 0.5)
    c = torch.zeros(2, model.n_network_conditions)
    c[1, field.axis] = 0.5  # the axis half a cell to the right: a different field
    v = field(x, t, c)
    assert v.shape == (2, 901) and not torch.allclose(v[0], v[1])


def test_unet_needs_a_one_layer_cartesian_readout():
    cfg = FlowMatchingConfig(
        detector=load_detector("atlas-like").to_yaml(), conditions=("energy",), network="unet"
    )
    with pytest.raises(CaloforgeError, match="one-layer cartesian readout"):
        FlowMatching(cfg)


def test_student_learns_the_teachers_pairs(teacher, lhcb_like, tmp_path):
    options = {"teacher": str(teacher), "hidden": 16, "blocks": 1}
    train(
        "flow-matching-student", lhcb_like, tmp_path / "s", settings=SETTINGS, model_options=options
    )
    student, master = load_model(tmp_path / "s"), load_model(teacher)
    assert student.config.shower_transform == master.config.shower_transform
    assert student.latent_dim == master.latent_dim
    data = ShowerFile(lhcb_like).read()
    pairs = student.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    noise, target = pairs.showers[:5].split(student.latent_dim, dim=1)
    with torch.no_grad():
        expected = master.generate_transformed(noise, pairs.conditions[:5])
    torch.testing.assert_close(target, expected)


def test_a_student_draws_several_pairs_per_shower_and_learns_one_each_step(
    teacher, lhcb_like, tmp_path
):
    options = {"teacher": str(teacher), "hidden": 16, "blocks": 1, "pairs": 3}
    train(
        "flow-matching-student", lhcb_like, tmp_path / "s", settings=SETTINGS, model_options=options
    )
    student, master = load_model(tmp_path / "s"), load_model(teacher)
    d = student.latent_dim
    data = ShowerFile(lhcb_like).read()
    made = student.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    assert made.showers.shape == (len(data.showers), 3 * 2 * d)
    noise, target = made.showers[:4].unflatten(1, (3, 2 * d)).split(d, dim=2)
    assert not torch.allclose(noise[:, 0], noise[:, 1])  # three draws, not one thrice
    with torch.no_grad():
        expected = master.generate_transformed(
            noise.flatten(0, 1), made.conditions[:4].repeat_interleave(3, dim=0)
        )
    torch.testing.assert_close(target.flatten(0, 1), expected)
    # A part of the split (data-parallel) draws each row's pairs from its own row.
    rows = np.array([2, 3])
    part = student.to_training(
        data.showers[2:4], data.incident_energies[2:4, 0], data.conditions[2:4], rows=rows
    )
    again = student.to_training(
        data.showers[2:4], data.incident_energies[2:4, 0], data.conditions[2:4], rows=rows
    )
    assert part.showers.shape == (2, 6 * d) and torch.equal(part.showers, again.showers)


def test_student_refuses_a_model_that_is_not_a_teacher(tiny_model, lhcb_like, tmp_path):
    with pytest.raises(CaloforgeError, match="not a teacher"):
        train(
            "flow-matching-student",
            lhcb_like,
            tmp_path / "s",
            settings=SETTINGS,
            model_options={"teacher": str(tiny_model)},
        )


def test_a_flow_that_fails_on_an_input_stops_generation_naming_the_event(teacher, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from caloforge.data.showerfile import partial_path
    from caloforge.generation import generate

    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    weights = load_file(broken / "model.safetensors")
    weights["velocity.net.out.1.bias"][0] = float("inf")  # the total's coordinate diverges
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(CaloforgeError, match=r"NaN or infinite energies \(first in event 0\)"):
        generate(broken, tmp_path / "g.h5", n=30, source="lhcb", batch_size=20, seed=0)
    assert not (tmp_path / "g.h5").exists()
    assert len(ShowerFile(partial_path(tmp_path / "g.h5"))) == 0


def test_teachers_and_student_export_to_onnx_and_match_torch(teacher, lhcb_like, tmp_path):
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    options = {"teacher": str(teacher), "hidden": 16, "blocks": 1}
    train(
        "flow-matching-student", lhcb_like, tmp_path / "s", settings=SETTINGS, model_options=options
    )
    unet = {"network": "unet", "channels": [4, 4, 4], "sample_steps": 2}
    train("flow-matching", lhcb_like, tmp_path / "u", settings=SETTINGS, model_options=unet)
    conditions = ShowerFile(lhcb_like).read(0, 9).conditions.astype(np.float32)
    for directory in (teacher, tmp_path / "s", tmp_path / "u"):
        model = load_model(directory)
        sampler = OnnxSampler(export_onnx(model, tmp_path / "model.onnx"))
        noise = np.random.default_rng(0).normal(size=(9, model.latent_dim)).astype(np.float32)
        with torch.inference_mode():
            expected = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
        # The batch (9) is not the export's example batch (2): the graph's batch axis is free.
        np.testing.assert_allclose(
            sampler.decode(noise, conditions), expected, rtol=1e-4, atol=1e-4
        )


def test_a_teacher_from_before_the_response_options_trains_and_reads_out_as_it_was_made(
    teacher, lhcb_like, tmp_path
):
    import json
    import shutil

    new = load_model(teacher)
    assert new.config.response_weight == 100.0 and new.config.total_above_threshold
    assert new.shower_transform.steps[0].threshold == new.detector.threshold
    old = tmp_path / "old"
    shutil.copytree(teacher, old)
    config = json.loads((old / "config.json").read_text())
    del config["response_weight"], config["total_above_threshold"]
    config["shower_transform"]["steps"][0].pop("threshold")
    (old / "config.json").write_text(json.dumps(config))
    model = load_model(old)
    assert model.config.response_weight == 1.0 and not model.config.total_above_threshold
    assert model.shower_transform.steps[0].threshold is None


def test_the_read_out_sums_to_the_drawn_response(lhcb_like, tmp_path):
    # Not centred: the shift back to the detector's frame would lose what falls off its edge.
    train("flow-matching", lhcb_like, tmp_path / "m", settings=SETTINGS,
          model_options=TINY | {"centre": False})  # fmt: skip
    model = load_model(tmp_path / "m")
    conditions = torch.as_tensor(ShowerFile(lhcb_like).read(0, 40).conditions).float()
    noise = model.noise(40, torch.Generator().manual_seed(2))
    with torch.inference_mode():
        c, _ = model.network_conditions(conditions)
        x = model.generate_transformed(noise, c)
        response = model.shower_transform.steps[1].inverse(x)[:, 0].exp()  # E_sum / E_inc
        drawn = response * model.energy_of(conditions)[:, 0]
        showers = model.decode(noise, conditions)
    read, seen = showers.sum(1), (showers > 0).any(1)
    assert seen.sum() > 30
    # Exactly the drawn total, but for cells lifted back to the threshold (LogShares).
    excess = (read - drawn)[seen]
    assert (excess > -1e-5 * drawn[seen]).all()
    lifted = model.detector.threshold * (showers > 0).sum(1)[seen]
    assert (excess <= lifted + 1e-5 * drawn[seen]).all()


class _Nothing(torch.nn.Module):
    def forward(self, x, t, c):
        return torch.zeros_like(x)


def test_a_cellwise_path_alone_is_the_best_velocity_of_independent_normal_cells():
    # For x1 ~ N(0, 1) and straight paths, E[x1 − x0 | x_t] = x_t (2t − 1) / (t² + (1 − t)²), and
    # the flow-matching loss it leaves is ∫ dt / (2t² − 2t + 1) = π/2; predicting nothing: 2.
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(200_000, 3, generator=g), torch.randn(200_000, 3, generator=g)
    t = torch.rand(200_000, 1, generator=g)
    xt, target = (1 - t) * x0 + t * x1, x1 - x0
    path = CellwisePath(_Nothing(), 3, hidden=4)
    c = torch.zeros(200_000, 0)
    with torch.no_grad():
        assert (path(xt, t, c) - target).pow(2).mean() == pytest.approx(np.pi / 2, abs=0.01)
        assert (path.field(xt, t, c) - target).pow(2).mean() == pytest.approx(2.0, abs=0.01)
        assert torch.equal(path(xt, t, c), CellwisePath(_Nothing(), 3, hidden=0)(xt, t, c))
