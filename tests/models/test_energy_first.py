"""The energy-first model: its parts, its coordinates, its training on every kind of readout, its
student and its export, on tiny networks and stand-in data."""

import numpy as np
import pytest
import torch

from caloforge.data.showerfile import ShowerFile
from caloforge.data.transforms import EnergyParts
from caloforge.detectors import builtin_detectors, load_detector
from caloforge.errors import CaloforgeError
from caloforge.models import get_family, load_model
from caloforge.models.common import part_layers, partition
from caloforge.models.energy_first import (
    EnergyFirst,
    EnergyFirstConfig,
    PartTransformer,
    ring_kinds,
)
from caloforge.models.flow_matching import _dequantise, _ShowerFlow
from caloforge.training.loop import TrainingSettings, train
from tests.conftest import TINY as TINY_MODELS
from tests.conftest import write_atlas_like, write_lcd_like, write_lhcb_like

TINY = TINY_MODELS["energy-first"]
SETTINGS = TrainingSettings(steps=4, batch_size=32, checkpoint_every=2, eval_every=2)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, lhcb_like):
    out = tmp_path_factory.mktemp("ef") / "teacher"
    train("energy-first", lhcb_like, out, settings=SETTINGS, model_options=TINY)
    return out


def test_registry():
    assert get_family("energy-first") is EnergyFirst


@pytest.mark.parametrize(
    ("name", "parts", "cells"),
    [("lhcb-ecal", 5, (1, 24, 84, 84, 707)), ("atlas-like", 4, (21, 168, 49, 28))],
)
def test_parts_are_derived_from_the_detector(name, parts, cells):
    assigned = partition(load_detector(name))
    assert assigned.max() + 1 == parts
    assert tuple(np.bincount(assigned)) == cells


@pytest.mark.parametrize("name", ["lcd-ecal", "par04", "clic-ecal"])
def test_a_multi_layer_detectors_parts_are_its_layers(name):
    detector = load_detector(name)
    np.testing.assert_array_equal(partition(detector), detector.cell_layer)


@pytest.mark.parametrize("name", builtin_detectors())
def test_rings_within_layers_refine_the_layers(name):
    from caloforge.detectors import CartesianBinning

    detector = load_detector(name)
    layers = detector.readout_layers
    if not all(isinstance(layer.readout, CartesianBinning) for layer in layers):
        with pytest.raises(CaloforgeError, match="is not cartesian"):
            partition(detector, layer_rings=True)
        return
    parts = partition(detector, layer_rings=True)
    if len(layers) == 1:
        np.testing.assert_array_equal(parts, partition(detector))
    first = np.unique(parts, return_index=True)[1]
    layer_of_part = detector.cell_layer[first]
    assert (np.diff(layer_of_part) >= 0).all()  # numbered in layer order
    np.testing.assert_array_equal(layer_of_part[parts], detector.cell_layer)  # none spans two
    for layer, offset in zip(layers, detector.layer_offsets, strict=False):
        ny, nx = layer.readout.shape
        middle = offset + (ny - 1) // 2 * nx + (nx - 1) // 2
        assert (parts == parts[middle]).sum() == 1  # the innermost ring is the middle cell


def test_rings_lie_around_the_middle_cell():
    assigned = partition(load_detector("lhcb-ecal")).reshape(30, 30)
    assert assigned[14, 14] == 0 and (assigned == 0).sum() == 1
    assert assigned[14, 15] == assigned[16, 16] == 1  # 1 and 2.8 cells away
    assert assigned[14, 17] == 2 and assigned[14, 20] == 3 and assigned[14, 22] == 4
    assert assigned[0, 0] == 4


def test_a_one_layer_readout_without_rows_and_columns_has_no_parts():
    from caloforge.detectors import detector_from_yaml

    one = detector_from_yaml(load_detector("par04").to_yaml().replace("count: 45", "count: 1"))
    with pytest.raises(CaloforgeError, match="no energy parts can be derived for par04"):
        partition(one)
    cfg = EnergyFirstConfig(detector=one.to_yaml(), conditions=("energy",))
    with pytest.raises(CaloforgeError, match="no energy parts"):
        EnergyFirst.default_transforms(cfg)


def test_ring_edges_must_increase():
    cfg = EnergyFirstConfig(
        detector=load_detector("lhcb-ecal").to_yaml(), conditions=("energy",), rings=(3.0, 1.0)
    )
    with pytest.raises(CaloforgeError, match="positive and increasing"):
        EnergyFirst.default_transforms(cfg)


@pytest.mark.parametrize("groups", [None, [0, 0, 1, 1], [0, 1, 1, 2]])
def test_coordinates_invert_and_hold_each_parts_energy(rng, groups):
    parts = rng.integers(0, 4, 40)
    parts[:4] = [0, 1, 2, 3]
    t = EnergyParts(parts.tolist(), scale=0.1, groups=groups)
    x = rng.exponential(2.0, (20, 40)) * (rng.random((20, 40)) < 0.5)
    x[x < 0.1] = 0
    energy = np.full((20, 1), 300.0)
    y = t.forward(x, energy)
    assert y.shape == (20, 4 + 40)
    np.testing.assert_allclose(t.inverse(y, energy), x, rtol=1e-9, atol=1e-12)
    yt = t.forward(torch.as_tensor(x), torch.as_tensor(energy))
    np.testing.assert_allclose(yt.numpy(), y)
    # However the cells are drawn, each part holds what the energy coordinates say, but for
    # cells lifted back to the threshold.
    noisy = y + rng.normal(0, 0.5, y.shape)
    cells = t.inverse(noisy, energy)
    assert ((cells == 0) | (cells >= 0.1)).all()
    held, wanted = t.part_energies(cells), t.energies(noisy, energy)
    occupied = held > 0
    lifted = 0.1 * np.stack([((cells > 0) & (parts == k)).sum(1) for k in range(4)], 1)
    assert occupied.mean() > 0.8
    assert (held[occupied] >= wanted[occupied] * (1 - 1e-9)).all()
    assert (held[occupied] <= wanted[occupied] + lifted[occupied] + 1e-9).all()
    np.testing.assert_allclose(wanted.sum(1), np.exp(noisy[:, 0]) * 300.0)


def test_a_share_within_a_group_moves_energy_within_that_group_only(rng):
    parts = np.repeat(np.arange(6), 5)
    x = rng.exponential(2.0, (10, 30)) + 0.1
    energy = np.full((10, 1), 300.0)
    for groups, moved in (([0, 0, 0, 1, 1, 1], [0, 1, 2]), (None, [0, 1, 2, 3, 4, 5])):
        t = EnergyParts(parts.tolist(), scale=0.1, groups=groups)
        y = t.forward(x, energy)
        np.testing.assert_allclose(t.energies(y, energy), t.part_energies(x), rtol=1e-9)
        shifted = y.copy()
        shifted[:, 1] += 1.0  # part 0's share: of its group's energy, or of every part's
        changed = ~np.isclose(t.energies(shifted, energy), t.energies(y, energy), rtol=1e-12)
        assert sorted(np.flatnonzero(changed.any(0))) == moved


@pytest.mark.parametrize("groups", [[0, 1], [1, 1, 2], [0, 2, 2], [0, 1, 0]])
def test_energy_groups_must_number_the_parts_in_order(groups):
    with pytest.raises(CaloforgeError, match="one per part, numbered 0"):
        EnergyParts([0, 1, 2], groups=groups)


def test_counted_parts_read_out_the_cells_their_counts_say(rng):
    parts = np.repeat([0, 1, 2], [10, 14, 6])
    t = EnergyParts(parts.tolist(), scale=0.1, counts=True)
    x = rng.exponential(2.0, (30, 30)) * (rng.random((30, 30)) < 0.5)
    x[x < 0.1] = 0
    energy = np.full((30, 1), 300.0)
    y = t.forward(x, energy)
    assert y.shape == (30, 3 + 3 + 30) and t.n_coordinates == 6
    np.testing.assert_allclose(t.inverse(y, energy), x, rtol=1e-9, atol=1e-12)
    # Cells drawn anyhow, counts drawn anyhow: each part reads out its count (at most its
    # cells), its largest cells, holding its energy but for cells lifted to the threshold.
    noisy = y + rng.normal(0, 1.0, y.shape)
    noisy[:, 3:6] = np.log1p(rng.integers(0, 16, (30, 3)) + rng.uniform(-0.4, 0.4, (30, 3)))
    in_torch = t.inverse(torch.as_tensor(noisy), torch.as_tensor(energy)).numpy()
    for cells in (t.inverse(noisy, energy), in_torch):
        wanted_n = np.minimum(np.round(np.expm1(noisy[:, 3:6])), [10, 14, 6])
        read = np.stack([(cells[:, parts == k] > 0).sum(1) for k in range(3)], 1)
        np.testing.assert_array_equal(read, wanted_n)
        assert ((cells == 0) | (cells >= 0.1 * (1 - 1e-12))).all()
        for k in range(3):
            mine, coords = cells[:, parts == k], noisy[:, 6:][:, parts == k]
            smallest_read = np.where(mine > 0, coords, np.inf).min(1)
            largest_left = np.where(mine == 0, coords, -np.inf).max(1)
            assert (smallest_read >= largest_left).all()
        held, wanted = t.part_energies(cells), t.energies(noisy, energy)
        some = read > 0
        assert (held[some] >= wanted[some] * (1 - 1e-9)).all()
        assert (held[some] <= wanted[some] + 0.1 * read[some] + 1e-9).all()


def test_empty_cells_as_each_treatment_learns_them():
    detector = load_detector("lhcb-ecal")
    showers = np.zeros((50, 900))
    showers[:, 0] = 5.0
    out = {}
    for empty in ("gap", "fixed", "band"):
        cfg = EnergyFirstConfig(detector=detector.to_yaml(), conditions=("energy",), empty=empty)
        out[empty] = _dequantise(showers, cfg)[:, 1:]
        assert (_dequantise(showers, cfg)[:, 0] == 5.0).all()
    assert (out["fixed"] == 0).all()
    assert out["gap"].max() < 0.035 and out["gap"].std() > 0.008  # up to 0.35 x threshold
    decades = np.log10(out["band"] / detector.threshold)
    assert abs(decades.mean() + 2) < 0.01 and abs(decades.std() - 0.2) < 0.01


def test_samples_are_read_out_and_seeded(teacher, lhcb_like):
    model = load_model(teacher)
    assert model.energy_coordinates == 5 and model.latent_dim == 905
    data = ShowerFile(lhcb_like).read(0, 50)
    a = model.sample(data.conditions, torch.Generator().manual_seed(3))
    b = model.sample(data.conditions, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 900) and np.isfinite(a).all()
    assert ((a == 0) | (a >= model.detector.threshold)).all()
    assert (a > 0).sum(1).min() > 0


def test_training_lowers_both_losses(lhcb_like):
    data = ShowerFile(lhcb_like).read()
    cfg = EnergyFirstConfig(
        detector=load_detector("lhcb-ecal").to_yaml(),
        conditions=("px", "py", "pz", "x", "y"),
        training={"settings": {"steps": 200}},
        **TINY,
    )
    energy = data.incident_energies[:, 0]
    torch.manual_seed(0)
    model = EnergyFirst.create(cfg, data.showers, energy, data.conditions)
    batch = model.to_training(data.showers, energy, data.conditions)
    optimizers = model.optimizers()
    losses = [
        model.train_step([batch], optimizers, torch.Generator().manual_seed(s), s)
        for s in range(200)
    ]
    # The stand-in's cells are mostly empty, fixed points the shape field learns at once, and
    # each cell's own path starts it near the best of independent cells (π/2), not at 2.
    for name, gain in (("energy", 0.9), ("shape", 0.98)):
        first = np.mean([loss[name] for loss in losses[:20]])
        assert np.mean([loss[name] for loss in losses[-20:]]) < gain * first


@pytest.mark.parametrize("shape_field", ["mlp", "parts"])
@pytest.mark.parametrize(
    ("writer", "options", "parts"),
    [
        (lambda p: write_atlas_like(p, 300, seed=1), {}, 4),
        (lambda p: write_atlas_like(p, 300, seed=1), {"layer_rings": True}, 14),
        (lambda p: write_lcd_like(p, 100, seed=1), {}, 25),
        (lambda p: write_lcd_like(p, 100, seed=1), {"layer_rings": True}, 125),
        (lambda p: write_lhcb_like(p, 300, seed=2), {}, 5),
    ],
    ids=["atlas-like", "atlas-like-rings", "lcd-ecal", "lcd-ecal-rings", "lhcb-ecal"],
)
def test_the_same_code_trains_on_every_kind_of_readout(
    writer, options, parts, shape_field, tmp_path
):
    data = writer(tmp_path / "data.h5")
    settings = TrainingSettings(steps=2, batch_size=16, checkpoint_every=2, eval_every=2)
    options = {**TINY, **options, "shape_field": shape_field}
    train("energy-first", data, tmp_path / "m", settings=settings, model_options=options)
    model = load_model(tmp_path / "m")
    assert model.energy_coordinates == parts
    sample = ShowerFile(data).read(0, 8)
    showers = model.sample(sample.conditions, torch.Generator().manual_seed(0))
    assert showers.shape == sample.showers.shape and np.isfinite(showers).all()
    assert (showers > 0).any()
    if shape_field == "parts":  # a token per layer, whatever the breakdown's parts
        field = getattr(model.shape, "field", model.shape)  # inside each cell's own path or not
        assert field.gather.shape[0] == partition(model.detector).max() + 1


@pytest.mark.parametrize("name", builtin_detectors())
def test_a_part_transformers_tokens_are_its_parts(name):
    detector = load_detector(name)
    try:
        assigned = partition(detector)
    except CaloforgeError:
        pytest.skip(f"{name} has no parts")
    field = PartTransformer(assigned, 3, 8, 1, 2)
    x = torch.randn(2, detector.n_cells)
    tokens = field.tokens(x)
    assert tokens.shape == (2, assigned.max() + 1, np.bincount(assigned).max())
    for part in range(assigned.max() + 1):
        cells = x[:, torch.from_numpy(assigned == part)]
        torch.testing.assert_close(tokens[:, part, : cells.shape[1]], cells)
        assert (tokens[:, part, cells.shape[1] :] == 0).all()
    torch.testing.assert_close(field.cells(tokens), x)


@pytest.mark.parametrize("name", builtin_detectors())
def test_ring_tokens_map_each_ring_by_its_own_weights(name):
    detector = load_detector(name)
    try:
        assigned = partition(detector, (3.0,), layer_rings=True)
    except CaloforgeError:
        pytest.skip(f"{name} has no parts")
    kinds = ring_kinds(detector, assigned)
    layers = part_layers(detector, assigned)
    for layer in np.unique(layers):  # each layer's rings from its middle out
        np.testing.assert_array_equal(kinds[layers == layer], np.arange((layers == layer).sum()))
    field = PartTransformer(assigned, 3, 8, 1, 2, kinds=kinds)
    assert len(field.inp) == len(field.out) == kinds.max() + 1
    for out in field.out:
        torch.nn.init.normal_(out.bias)
    x, t, c = torch.randn(2, detector.n_cells), torch.rand(2, 1), torch.randn(2, 3)
    before = field(x, t, c)
    with torch.no_grad():
        field.out[0].bias.add_(1.0)  # moves the innermost rings' cells, and only theirs
    moved = (field(x, t, c) - before).abs().amax(dim=0) > 0
    np.testing.assert_array_equal(moved.numpy(), kinds[assigned] == 0)


def test_a_part_transformer_of_an_older_file_loads_its_single_maps():
    assigned = partition(load_detector("atlas-like"))
    field = PartTransformer(assigned, 3, 8, 1, 2)
    torch.nn.init.normal_(field.out[0].weight)
    older = {
        name.replace("inp.0.", "inp.").replace("out.0.", "out."): value
        for name, value in field.state_dict().items()
    }  # what a file held when every part went through one map, not one per kind
    assert "inp.weight" in older and "out.bias" in older
    loaded = PartTransformer(assigned, 3, 8, 1, 2)
    loaded.load_state_dict(older)
    x, t, c = torch.randn(2, len(assigned)), torch.rand(2, 1), torch.randn(2, 3)
    torch.testing.assert_close(loaded(x, t, c), field(x, t, c))


def test_a_part_transformers_heads_must_divide_its_width():
    with pytest.raises(CaloforgeError, match="not a multiple of 3 heads"):
        PartTransformer(partition(load_detector("lcd-ecal")), 3, 16, 1, 3)


def test_par04_trains(tmp_path):
    from caloforge.sources import load_source, sample_primaries
    from tests.conftest import write_primaries

    detector, source = load_detector("par04"), load_source("par04")
    primaries = sample_primaries(source, 0, 120, 1)
    rng = np.random.default_rng(0)
    profile = np.exp(-np.arange(detector.n_cells) / 300.0)
    showers = rng.exponential(1.0, (120, detector.n_cells)) * profile
    showers = (showers * primaries.energy[:, None] / 2e4).astype(np.float32)
    data = write_primaries(tmp_path / "par04.h5", detector, source, primaries, showers, seed=1)
    settings = TrainingSettings(steps=2, batch_size=16, checkpoint_every=2, eval_every=2)
    train("energy-first", data, tmp_path / "m", settings=settings, model_options=TINY)
    model = load_model(tmp_path / "m")
    assert model.energy_coordinates == 45
    out = model.sample(ShowerFile(data).read(0, 4).conditions, torch.Generator().manual_seed(0))
    assert out.shape == (4, detector.n_cells) and np.isfinite(out).all()


def test_a_student_learns_the_energy_first_teacher(teacher, lhcb_like, tmp_path):
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    options = {"teacher": str(teacher), "hidden": 16, "blocks": 1}
    train(
        "flow-matching-student", lhcb_like, tmp_path / "s", settings=SETTINGS, model_options=options
    )
    student, master = load_model(tmp_path / "s"), load_model(teacher)
    assert student.config.shower_transform == master.config.shower_transform
    assert student.latent_dim == master.latent_dim == 905
    assert student.config.empty == master.config.empty
    assert student.config.calibration == master.config.calibration == 32  # its own map, as many
    assert not torch.equal(student.calibration_knots, master.calibration_knots)
    data = ShowerFile(lhcb_like).read()
    pairs = student.to_training(data.showers, data.incident_energies[:, 0], data.conditions)
    noise, target = pairs.showers[:5].split(student.latent_dim, dim=1)
    with torch.no_grad():
        expected = master.generate_transformed(noise, pairs.conditions[:5])
    torch.testing.assert_close(target, expected)
    conditions = data.conditions[:9].astype(np.float32)
    for model in (master, student):
        sampler = OnnxSampler(export_onnx(model, tmp_path / "model.onnx"))
        noise = np.random.default_rng(0).normal(size=(9, model.latent_dim)).astype(np.float32)
        with torch.inference_mode():
            want = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
        np.testing.assert_allclose(sampler.decode(noise, conditions), want, rtol=1e-4, atol=1e-4)


def test_parts_beyond_the_incident_energy_stop_generation_naming_the_event(teacher, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from caloforge.data.showerfile import partial_path
    from caloforge.generation import generate

    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    weights = load_file(broken / "model.safetensors")
    weights["energy.net.out.1.bias"][0] = 200.0  # ln(E_sum / E_inc) far above 0
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(CaloforgeError, match=r"MeV in event 0, more than its incident"):
        generate(broken, tmp_path / "g.h5", n=30, source="lhcb", batch_size=20, seed=0)
    assert not (tmp_path / "g.h5").exists()
    assert len(ShowerFile(partial_path(tmp_path / "g.h5"))) == 0


def test_read_out_knots_put_that_many_knots_on_each_cells_deposits(lhcb_like, tmp_path):
    options = TINY | {"calibration": 16, "read_out_knots": 5}
    train("energy-first", lhcb_like, tmp_path / "m", settings=SETTINGS, model_options=options)
    model = load_model(tmp_path / "m")
    data = ShowerFile(lhcb_like).read()
    edges = torch.from_numpy(model.read_out_edges()).float()
    learnt = _ShowerFlow.to_training(
        model, data.showers, data.incident_energies[:, 0], data.conditions
    ).showers[:, model.energy_coordinates :]
    read = (learnt >= edges).any(dim=0)  # cells with deposits, in the frame the model learns
    on_deposits = {}
    for tail in (0, 5):
        model.config = model.config.model_copy(update={"read_out_knots": tail})
        model.after_training(data.showers, data.incident_energies[:, 0], data.conditions)
        on_deposits[tail] = (model.calibration_values >= edges[:, None]).sum(1)[read]
    assert (on_deposits[5] >= 6).all()  # the first deposit, then five up to the largest
    assert (on_deposits[0] < 6).any()  # where the logit-spaced levels barely reach
    too_many = model.config.model_copy(update={"read_out_knots": 13})
    with pytest.raises(CaloforgeError, match="read_out_knots=13 leaves too few"):
        EnergyFirst(too_many)  # refused before any training


def test_each_cells_map_brings_the_drawn_law_to_the_datas(lhcb_like, tmp_path):
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    options = TINY | {"calibration": 16}
    train("energy-first", lhcb_like, tmp_path / "m", settings=SETTINGS, model_options=options)
    model = load_model(tmp_path / "m")
    z = torch.linspace(-10, 10, 200)[:, None].expand(200, model.detector.n_cells)
    mapped = model.calibrated(torch.cat([torch.zeros(200, 5), z], dim=1))[:, 5:]
    assert (mapped.diff(dim=0) >= -1e-4).all()  # monotone, cell by cell
    # each value is mapped on the segment after the last of its cell's knots at or below it,
    # on the knots too
    knots = model.calibration_knots
    at = torch.cat([z, knots.T, knots.T + 1e-3, knots.T - 1e-3])
    segment = torch.searchsorted(knots, at.T.contiguous(), right=True).T
    cell, first = torch.arange(len(knots)), (segment - 1).clamp_min(0)
    start, value = knots[cell, first], model.calibration_values[cell, first]
    expected = value + model.calibration_slopes[cell, segment] * (at - start)
    mapped = model.calibrated(torch.cat([torch.zeros(len(at), 5), at], dim=1))[:, 5:]
    torch.testing.assert_close(mapped, expected, rtol=0, atol=0)
    data = ShowerFile(lhcb_like).read()
    wanted = (data.showers >= model.detector.threshold).sum(1).mean()
    calibrated = model.sample(data.conditions, torch.Generator().manual_seed(0))
    model.calibration_values.copy_(model.calibration_knots)  # the identity: the map undone
    model.calibration_slopes.fill_(1.0)
    raw = model.sample(data.conditions, torch.Generator().manual_seed(0))
    cells = [(s > 0).sum(1).mean() for s in (calibrated, raw)]
    assert abs(cells[0] - wanted) < 0.1 * wanted < abs(cells[1] - wanted)
    calibrated_model = load_model(tmp_path / "m")
    sampler = OnnxSampler(export_onnx(calibrated_model, tmp_path / "m.onnx"))
    noise = np.random.default_rng(0).normal(size=(9, 905)).astype(np.float32)
    conditions = data.conditions[:9].astype(np.float32)
    with torch.inference_mode():
        want = calibrated_model.decode(torch.from_numpy(noise), torch.from_numpy(conditions))
    np.testing.assert_allclose(
        sampler.decode(noise, conditions), want.numpy(), rtol=1e-4, atol=1e-2
    )


def test_a_directory_written_before_the_cells_own_path_loads_without_it(tmp_path, lhcb_like):
    import json

    settings = TrainingSettings(steps=2, batch_size=16, checkpoint_every=2, eval_every=2)
    options = {**TINY, "skip": False}
    train("energy-first", lhcb_like, tmp_path / "m", settings=settings, model_options=options)
    config = tmp_path / "m" / "config.json"
    data = json.loads(config.read_text())
    del data["skip"], data["cellwise"]
    config.write_text(json.dumps(data))
    model = load_model(tmp_path / "m")
    assert not model.config.skip and not any(
        k.startswith("shape.scale") for k in model.state_dict()
    )


def test_a_count_beyond_the_cells_above_the_edge_is_filled_by_occupancy(rng):
    # One part of 20 cells; cell j read out in training in a share of showers that grows with j.
    scale, floor, n, cells = 0.1, 1e-3, 4000, 20
    occupancy = np.linspace(0.0, 0.95, cells)
    train = np.where(rng.random((n, cells)) < occupancy, 1.0, 0.0)
    band = [1e-2, 0.2]
    weighted = EnergyParts([0] * cells, scale, floor, counts=True, band=band).fit(train)
    np.testing.assert_allclose(weighted.occupancy, occupancy, atol=0.03)
    at_random = EnergyParts([0] * cells, scale, floor, counts=True)
    # Every cell empty, in the band; five cells wanted.
    empty = scale * 10.0 ** rng.normal(np.log10(band[0]), band[1], (n, cells))
    y = at_random.forward(empty, np.full((n, 1), 100.0))
    y[:, 1] = np.log1p(5)  # after ln(E_sum / E_inc)
    energy = np.full((n, 1), 100.0)
    chosen = {}
    for name, t in (("occupancy", weighted), ("band", at_random)):
        out = t.inverse(y, energy)
        assert ((out > 0).sum(1) == 5).all() and (out[out > 0] >= scale * (1 - 1e-9)).all()
        chosen[name] = (out > 0).mean(0)
        np.testing.assert_allclose(t.inverse(torch.as_tensor(y), torch.as_tensor(energy)), out)
    # At random: each cell a quarter of the time. By occupancy: as five draws without
    # replacement, each in proportion to the cells' occupancy (never the cell never read out).
    assert np.abs(chosen["band"] - 5 / cells).max() < 0.05
    p = np.clip(weighted.occupancy, 1e-6, None)
    draws = [rng.choice(cells, 5, replace=False, p=p / p.sum()) for _ in range(n)]
    expected = np.bincount(np.concatenate(draws), minlength=cells) / n
    assert np.abs(chosen["occupancy"] - expected).max() < 0.04
    assert chosen["occupancy"][0] < 0.005
    with pytest.raises(CaloforgeError, match="needs the counts"):
        EnergyParts([0, 0], scale, band=band)


def test_a_model_filling_counts_by_occupancy_exports(lhcb_like, tmp_path):
    from caloforge.runtimes.onnx import OnnxSampler, export_onnx

    options = TINY | {"counts": True, "fill": "occupancy", "calibration": 16}
    train("energy-first", lhcb_like, tmp_path / "m", settings=SETTINGS, model_options=options)
    model = load_model(tmp_path / "m")
    first = model.shower_transform.steps[0]
    data = ShowerFile(lhcb_like).read()
    read = (data.showers >= model.detector.threshold).mean()
    assert first.band == [model.config.band, 0.2] and len(first.occupancy) == 900
    assert np.mean(first.occupancy) == pytest.approx(read, rel=0.1)  # in the shower's frame
    noise = np.random.default_rng(0).normal(size=(9, model.latent_dim)).astype(np.float32)
    conditions = data.conditions[:9].astype(np.float32)
    with torch.inference_mode():
        want = model.decode(torch.from_numpy(noise), torch.from_numpy(conditions)).numpy()
    sampler = OnnxSampler(export_onnx(model, tmp_path / "m.onnx"))
    np.testing.assert_allclose(sampler.decode(noise, conditions), want, rtol=1e-4, atol=1e-2)
    without_counts = model.config.model_copy(update={"counts": False})
    with pytest.raises(CaloforgeError, match="fill=occupancy needs counts=true"):
        EnergyFirst.default_transforms(without_counts)
